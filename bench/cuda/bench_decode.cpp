// End-to-end benchmark of a model on the CUDA backend through Model::forward, as an engine drives it: load time,
// graph recording (warm-up), the first request against steady state, decode tokens/s at several batch sizes (each
// step one token per sequence, graph-replayed), and prefill tokens/s.
//
//   bench_cuda_decode --model DIR | --synth glm-4.7-flash --dir /tmp/glm [--layers N]
//                     [--batches 1,16,64] [--steps 32] [--prompt 32] [--prefill 2048] [--ctx 4096] [--out FILE]
//                     [--ncu N] [--ncu-batch B] [--repeat "SPEC;SPEC;..."]
// --ncu N: after the warm-up, N decode steps at batch B (1) run between cudaProfilerStart and cudaProfilerStop, for
// `ncu --profile-from-start off --graph-profiling node` (the GPU time of every kernel of a graph-replayed step).
// --repeat: the in-graph cost of ops (repeat_backend.h): for each SPEC the step graphs are recorded again with those
// ops issued twice, and batch-1 decode is timed against the plain step (measured just before, same process); the
// difference per extra launch is what one issue of the op adds to a replayed step (ops a step issues after its graph,
// as the greedy argmax, count as theirs: the extra issues of a run's decode steps outside the graph).
//
// Steps run through Model::forward_greedy, as an engine that samples on the device does: only the token ids come
// back to the host (before the ninth session every step copied its logits back: ~4-5 ms per step at batch 64,
// with a spread that swamped A/B runs).
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/log.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "model/synth.h"
#include "repeat_backend.h"

using namespace mmfp4;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<int64_t> ints(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) out.push_back(std::stoll(x));
  return out;
}

// One request per sequence: prompt of `prompt` tokens (prefilled together), then `steps` decode steps of one token
// per sequence. Returns {prefill seconds, decode seconds}.
std::pair<double, double> run_batch(Model& m, KVCache& kv, int64_t batch, int64_t prompt, int64_t steps,
                                    std::mt19937& rng, bool profiler = false) {
  const int64_t V = m.vocab_size();
  std::uniform_int_distribution<int32_t> tok(0, int32_t(V - 1));
  std::vector<SeqCache> seqs(static_cast<size_t>(batch));
  for (auto& s : seqs)
    if (!s.reserve(kv, prompt + steps)) fail("KV cache too small for ", batch, " x ", prompt + steps, " tokens");
  std::vector<int32_t> ids(static_cast<size_t>(batch));
  const double t0 = now();
  for (int64_t s0 = 0; s0 < batch; s0 += std::max<int64_t>(1, m.max_tokens() / prompt)) {
    Batch b;
    const int64_t s1 = std::min(batch, s0 + std::max<int64_t>(1, m.max_tokens() / prompt));
    for (int64_t s = s0; s < s1; ++s) {
      b.seqs.push_back(&seqs[size_t(s)]);
      for (int64_t p = 0; p < prompt; ++p) b.add(tok(rng), int32_t(p), int32_t(s - s0), p + 1 == prompt);
    }
    m.forward_greedy(b, kv, ids.data());
  }
  if (profiler) cudaProfilerStart();
  const double t1 = now();
  for (int64_t step = 0; step < steps; ++step) {
    Batch d;
    for (int64_t s = 0; s < batch; ++s) {
      d.seqs.push_back(&seqs[size_t(s)]);
      d.add(tok(rng), int32_t(prompt + step), int32_t(s), true);
    }
    m.forward_greedy(d, kv, ids.data());
  }
  const double t2 = now();
  if (profiler) cudaProfilerStop();
  for (auto& s : seqs) s.clear(kv);
  return {t1 - t0, t2 - t1};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string model_dir, synth, synth_dir = "/tmp/mmfp4-synth", out_path, repeat;
    int64_t layers = 0, steps = 32, prompt = 32, prefill = 2048, ctx = 4096, ncu_steps = 0, ncu_batch = 1;
    bool profile = false;
    std::vector<int64_t> batches = {1, 16, 64};
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) fail("missing value after ", a);
        return argv[++i];
      };
      if (a == "--model") model_dir = next();
      else if (a == "--synth") synth = next();
      else if (a == "--dir") synth_dir = next();
      else if (a == "--layers") layers = std::stoll(next());
      else if (a == "--batches") batches = ints(next());
      else if (a == "--steps") steps = std::stoll(next());
      else if (a == "--prompt") prompt = std::stoll(next());
      else if (a == "--prefill") prefill = std::stoll(next());
      else if (a == "--ctx") ctx = std::stoll(next());
      else if (a == "--out") out_path = next();
      else if (a == "--profile") profile = true;
      else if (a == "--ncu") ncu_steps = std::stoll(next());
      else if (a == "--ncu-batch") ncu_batch = std::stoll(next());
      else if (a == "--repeat") repeat = next();
      else fail("unknown argument ", a);
    }
    std::ostringstream js;
    js << "{";
    if (!synth.empty()) {
      SynthOptions so;
      so.layers = layers;
      so.force = true;
      const double t = now();
      const int64_t bytes = synthesize_checkpoint(builtin_config(synth), synth_dir, so);
      std::printf("synthesized %s (%s layers) into %s: %.2f GB in %.1f s\n", synth.c_str(),
                  layers ? std::to_string(layers).c_str() : "all", synth_dir.c_str(), bytes / 1e9, now() - t);
      model_dir = synth_dir;
      js << "\"synth\": \"" << synth << "\", \"layers\": " << layers << ", ";
    }
    if (cuda_device_count() == 0) {
      std::printf("no CUDA GPU: %s\n", cuda_status_message().c_str());
      return 0;
    }
    auto real = make_backend("cuda");
    RepeatBackend rb(*real);  // a plain forwarder unless --repeat sets a spec
    Backend* be = &rb;
    ModelOptions opt;
    opt.max_tokens = std::max<int64_t>(prefill, *std::max_element(batches.begin(), batches.end()));
    opt.max_context = ctx;
    double t = now();
    auto model = Model::load(model_dir, *be, opt);
    const double load_s = now() - t;
    const int64_t max_b = *std::max_element(batches.begin(), batches.end());
    const int64_t blocks = (max_b * ((prompt + steps + 15) / 16 + 1) + prefill / 16 + 8) * 2;
    KVCache kv(*be, model->config(), blocks, opt.kv_block_size);
    t = now();
    model->prepare_graphs(kv);
    const double graphs_s = now() - t;
    std::printf("%s on %s\nload %.1f s (%.2f GB weights), step graphs recorded in %.2f s, KV cache %.2f GB\n",
                model->config().summary().c_str(), be->name().c_str(), load_s, model->weight_bytes() / 1e9, graphs_s,
                kv.total_bytes() / 1e9);
    js << "\"backend\": \"" << be->name() << "\", \"load_s\": " << load_s << ", \"graphs_s\": " << graphs_s;

    std::mt19937 rng(1);
    // First request after load vs the same request again (steady state).
    const auto first = run_batch(*model, kv, 1, prompt, steps, rng);
    std::pair<double, double> steady{1e9, 1e9};
    for (int r = 0; r < 3; ++r) {
      auto x = run_batch(*model, kv, 1, prompt, steps, rng);
      steady.first = std::min(steady.first, x.first);
      steady.second = std::min(steady.second, x.second);
    }
    if (ncu_steps > 0) {
      run_batch(*model, kv, ncu_batch, prompt, ncu_steps, rng, true);
      std::printf("profiled %d decode steps at batch %d (cudaProfilerStart/Stop)\n", int(ncu_steps), int(ncu_batch));
    }
    std::printf("first request: prefill %d tokens %.2f ms, %d decode steps %.2f ms; steady state %.2f ms, %.2f ms "
                "(first / steady: %.2fx)\n",
                int(prompt), first.first * 1e3, int(steps), first.second * 1e3, steady.first * 1e3,
                steady.second * 1e3, (first.first + first.second) / (steady.first + steady.second));
    js << ", \"first_request_s\": " << first.first + first.second
       << ", \"steady_request_s\": " << steady.first + steady.second << ", \"decode\": [";
    for (size_t i = 0; i < batches.size(); ++i) {
      const int64_t B = batches[i];
      run_batch(*model, kv, B, prompt, 2, rng);  // warm
      const auto r = run_batch(*model, kv, B, prompt, steps, rng);
      const double step_ms = r.second / steps * 1e3;
      std::printf("decode batch %3d: %8.1f tokens/s (%.3f ms per step, greedy ids sampled on the device)\n", int(B),
                  B * steps / r.second, step_ms);
      js << (i ? ", " : "") << "{\"batch\": " << B << ", \"tokens_per_s\": " << B * steps / r.second
         << ", \"step_ms\": " << step_ms << "}";
    }
    js << "]";
    if (prefill > 0) {
      run_batch(*model, kv, 1, std::min<int64_t>(prefill, 256), 0, rng);
      double best = 1e9;
      for (int r = 0; r < 2; ++r) best = std::min(best, run_batch(*model, kv, 1, prefill, 0, rng).first);
      std::printf("prefill %d tokens: %.1f ms, %.0f tokens/s\n", int(prefill), best * 1e3, prefill / best);
      js << ", \"prefill_tokens\": " << prefill << ", \"prefill_tokens_per_s\": " << prefill / best;
    }
    js << "}\n";
    if (!out_path.empty()) std::ofstream(out_path) << js.str();
    if (!repeat.empty()) {
      std::printf("---- in-graph cost of repeated ops (decode batch 1, %d steps, plain step timed just before each)\n",
                  int(steps));
      int64_t per_step = 0;  // extra launches the spec adds to one recorded step
      auto timed = [&](const std::string& spec) {
        rb.set_spec(spec);
        model->clear_graphs();
        rb.reset_extra();
        model->prepare_graphs(kv);
        per_step = rb.graphs() > 0 ? rb.extra() / rb.graphs() : 0;
        // Issues outside the graph per decode step (the greedy argmax): a run's eager issues less its prefill's.
        run_batch(*model, kv, 1, prompt, 2, rng);  // warm
        rb.reset_extra();
        run_batch(*model, kv, 1, prompt, 0, rng);  // the prefill's own
        const int64_t prefill_eager = rb.eager();
        rb.reset_extra();
        double best = run_batch(*model, kv, 1, prompt, steps, rng).second;
        per_step += steps > 0 ? (rb.eager() - prefill_eager) / steps : 0;
        best = std::min(best, run_batch(*model, kv, 1, prompt, steps, rng).second);
        return best / steps;
      };
      std::stringstream ss(repeat);
      std::string spec;
      while (std::getline(ss, spec, ';')) {
        if (spec.empty()) continue;
        const double base = timed("");
        const double with = timed(spec);
        const int64_t n = per_step;
        std::printf("repeat %-24s step %.3f ms (plain %.3f ms): %+.1f us per step, %lld extra launches per step -> "
                    "%.2f us each\n",
                    spec.c_str(), with * 1e3, base * 1e3, (with - base) * 1e6, (long long)n,
                    n > 0 ? (with - base) * 1e6 / double(n) : 0.0);
        std::fflush(stdout);
      }
      rb.set_spec("");
      model->clear_graphs();
      model->prepare_graphs(kv);
    }
    if (profile) {
      // One eager decode step, then one prefill, with every op synchronised and timed (the model's --verbose tracer,
      // to stderr).
      model.reset();
      set_log_level(LogLevel::Debug);
      ModelOptions po = opt;
      po.verbose = true;
      auto pm = Model::load(model_dir, *be, po);
      std::fprintf(stderr, "---- profile: one decode step at batch 1 after a %d-token prompt (eager, synchronised)\n",
                   int(prompt));
      run_batch(*pm, kv, 1, prompt, 1, rng);
      if (prefill > 0) {
        std::fprintf(stderr, "---- profile prefill: one %d-token prompt (eager, synchronised)\n", int(prefill));
        run_batch(*pm, kv, 1, prefill, 0, rng);
      }
      set_log_level(LogLevel::Info);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_decode: %s\n", e.what());
    return 1;
  }
}
