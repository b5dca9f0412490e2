// mmfp4 bench: prompt-processing and generation speed of a model folder, in the style of llama-bench, driven through
// Model + KVCache directly (so it measures the backend, not the scheduler), with the ceiling it should be read
// against measured in the same run: the read bandwidth of the memory the weights live in (host RAM, or the GPU's
// own), and for decode the bytes of weights a token reads (routed experts counted only for the experts a token uses)
// -> the bandwidth roofline in tokens/s.
//
//   ppP        one sequence of P prompt tokens in forward steps of up to P tokens: P / time
//   tgN        one sequence generating N tokens from an empty cache, one token per step: N / time
//   tgN@bB     B sequences generating N tokens each, B tokens per step: B * N / time
// Each test runs once right after the model loads ("first request") and then -r more times (mean +- stddev);
// ARCHITECTURE.md promises that the first request is as fast as the hundredth, and the table shows both.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "args.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/membw.h"
#include "command.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "format/checkpoint.h"
#include "kv/kv_cache.h"
#include "model/model.h"

#include "build_commit.h"

namespace mmfp4::cli {
namespace {

// The commit this binary was built from (stamped at build time: tools/cli/build_commit.cmake).
std::string source_commit() { return MMFP4_BUILD_COMMIT; }

// Weights of the checkpoint as the forward pass reads them.
struct WeightCensus {
  double params = 0;        // logical parameters of the layers in use (MMFP4: N x K per weight)
  double bytes = 0;         // bytes of those tensors in the file
  double dense_bytes = 0;   // read once per step whatever the batch (attention, dense/shared MLP, router, lm_head)
  double expert_bytes = 0;  // all routed experts of all layers
  double embed_row_bytes = 0;
};

int layer_of(const std::string& name) {
  const size_t p = name.find("layers.");
  if (p == std::string::npos) return -1;
  return std::atoi(name.c_str() + p + 7);
}

WeightCensus weight_census(const std::string& dir, const ModelConfig& cfg) {
  WeightCensus c;
  auto ck = Checkpoint::open(dir);
  const bool has_lm_head = ck->find("lm_head.weight") || ck->find("lm_head.weight.scales");
  for (const TensorInfo* t : ck->tensors()) {
    const std::string& n = t->name;
    const int layer = layer_of(n);
    if (layer >= cfg.num_layers) continue;  // e.g. GLM's MTP layer, not run
    const bool codes = t->dtype == DType::U32 && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0;
    const bool aux = n.find(".group_size") != std::string::npos || n.find(".hadamard_block_size") != std::string::npos;
    if (aux) continue;
    double params = codes ? double(t->numel()) * 8 : (n.find(".scales") != std::string::npos ? 0 : double(t->numel()));
    const double bytes = double(t->nbytes);
    c.params += params;
    c.bytes += bytes;
    if (n.find("embed_tokens") != std::string::npos) {
      c.embed_row_bytes = bytes / double(std::max<int64_t>(1, cfg.vocab_size));
      if (!has_lm_head) c.dense_bytes += bytes;  // tied: the table is also the lm_head
      continue;
    }
    if (n.find(".mlp.experts.") != std::string::npos) {
      c.expert_bytes += bytes;
    } else {
      c.dense_bytes += bytes;
    }
  }
  return c;
}

// Expected weight bytes read by one decode step of b tokens: every dense weight once, and for routed experts the
// expected number of distinct experts b tokens pick if routing were uniform (exactly top_k per layer when b = 1).
double step_bytes(const WeightCensus& c, const ModelConfig& cfg, int64_t b) {
  double experts = 0;
  if (cfg.n_routed_experts > 0 && c.expert_bytes > 0) {
    const double E = double(cfg.n_routed_experts), k = double(cfg.num_experts_per_tok);
    const double distinct = E * (1.0 - std::pow(1.0 - k / E, double(b)));
    experts = c.expert_bytes * distinct / E;
  }
  return c.dense_bytes + experts + c.embed_row_bytes * double(b);
}

struct Stats {
  double mean = 0, sd = 0;
};
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Stats stats(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / double(v.size() - 1)) : 0;
  return s;
}

struct TestResult {
  std::string name;
  int64_t tokens = 0;           // tokens per run
  int64_t batch = 1;
  double first_s = 0;           // the run right after load
  std::vector<double> runs_s;   // steady-state runs
  double bytes_per_step = 0;    // decode: expected weight bytes per step
  int64_t steps = 0;
  std::vector<double> read_gbs; // decode on the CPU: read bandwidth measured right after each steady run
};

// Per steady run of a decode test: the weight bandwidth it achieved over the read bandwidth measured right after it
// (median over runs). Pairing each run with its own measurement keeps the ratio meaningful on a machine whose
// other tenants come and go during the benchmark.
double paired_fraction(const TestResult& r) {
  std::vector<double> f;
  for (size_t i = 0; i < r.runs_s.size() && i < r.read_gbs.size(); ++i)
    f.push_back(r.bytes_per_step * double(r.steps) / r.runs_s[i] / 1e9 / r.read_gbs[i]);
  std::sort(f.begin(), f.end());
  return f.empty() ? 0 : f[f.size() / 2];
}

class Bencher {
 public:
  Bencher(Model& m, KVCache& kv, uint64_t seed) : m_(m), kv_(kv), rng_(seed) {}

  // One prompt of p tokens.
  double prefill(int64_t p) {
    std::vector<int32_t> ids = random_ids(p);
    SeqCache sc;
    if (!sc.reserve(kv_, p)) fail("bench: KV cache too small for ", p, " tokens");
    std::vector<float> logits(static_cast<size_t>(m_.vocab_size()));
    Batch b;
    b.seqs.push_back(&sc);
    for (int64_t i = 0; i < p; ++i) b.add(ids[size_t(i)], int32_t(i), 0, i + 1 == p);
    const double t0 = now_seconds();
    m_.forward(b, kv_, logits.data());
    const double dt = now_seconds() - t0;
    sc.clear(kv_);
    return dt;
  }

  // nb sequences generating n tokens each, one token per sequence per step (greedy, so the ids are those a real
  // generation would feed back; the argmax runs where the logits are, as in the engine).
  double decode(int64_t n, int64_t nb) {
    std::vector<SeqCache> sc(static_cast<size_t>(nb));
    for (auto& s : sc)
      if (!s.reserve(kv_, n)) fail("bench: KV cache too small for ", nb, " x ", n, " tokens");
    std::vector<int32_t> next = random_ids(nb);
    Batch b;
    for (auto& s : sc) b.seqs.push_back(&s);
    const double t0 = now_seconds();
    for (int64_t i = 0; i < n; ++i) {
      b.tokens.clear();
      b.positions.clear();
      b.seq.clear();
      b.logit_rows.clear();
      for (int64_t s = 0; s < nb; ++s) b.add(next[size_t(s)], int32_t(i), int32_t(s), true);
      m_.forward_greedy(b, kv_, next.data());  // argmax on the device, as the engine's greedy steps
    }
    const double dt = now_seconds() - t0;
    for (auto& s : sc) s.clear(kv_);
    return dt;
  }

 private:
  std::vector<int32_t> random_ids(int64_t n) {
    std::uniform_int_distribution<int32_t> d(0, int32_t(m_.vocab_size() - 1));
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(rng_);
    return v;
  }
  Model& m_;
  KVCache& kv_;
  std::mt19937_64 rng_;
};

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  return buf;
}
std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  return buf;
}

int run_bench(const std::vector<std::string>& argv) {
  Args a("bench", "mmfp4 bench -m DIR [-p 512] [-n 128] [-b 1,4,16] [-t THREADS] [-r REPS] [--device cpu|cuda] [--json]");
  a.option("-m", "--model", "DIR", "model folder");
  a.option("-p", "--prompt", "N", "prompt tokens of the prefill test (0: none)", "512");
  a.option("-n", "--gen", "N", "tokens generated per sequence in the decode tests (0: none)", "128");
  a.option("-b", "--batch", "LIST", "decode batch sizes: sequences generating together", "1");
  a.option("-t", "--threads", "N", "CPU threads (0: all cores)", "0");
  a.option("-r", "--reps", "N", "repetitions after the first run", "5");
  a.option("", "--device", "DEV", "cpu, cuda or auto (CUDA when a GPU is present)", "auto");
  a.option("", "--seed", "S", "seed of the random token ids", "1");
  a.flag("--no-membw", "skip the memory bandwidth test");
  a.flag("--json", "print one JSON object instead of the table");
  a.option("", "--json-out", "FILE", "also write the JSON object to FILE");
  if (!a.parse(argv)) return 0;
  const std::string dir = a.require("--model");
  const int64_t P = a.get_int("--prompt", 512), N = a.get_int("--gen", 128), reps = a.get_int("--reps", 5);
  const std::vector<int64_t> batches = parse_int_list(a.get("--batch"), "--batch");
  const int threads = int(a.get_int("--threads", 0));
  if (P < 0 || N < 0 || reps < 1) fail("-p and -n must be >= 0 and -r >= 1");
  for (int64_t b : batches)
    if (b < 1) fail("--batch: batch sizes must be >= 1");
  const bool json_out = a.get_flag("--json");

  // Setup.
  auto be = make_backend(a.get("--device"), threads);
  const int64_t max_b = batches.empty() ? 1 : *std::max_element(batches.begin(), batches.end());
  ModelOptions mo;
  mo.max_tokens = std::max<int64_t>({P, max_b, 1});
  mo.max_context = std::max<int64_t>(P, N) + 16;
  const double tl = now_seconds();
  auto model = Model::load(dir, *be, mo);
  const double load_s = now_seconds() - tl;
  const ModelConfig& cfg = model->config();
  const int64_t blocks_per_seq = (mo.max_context + mo.kv_block_size - 1) / mo.kv_block_size;
  KVCache kv(*be, cfg, blocks_per_seq * std::max<int64_t>(max_b, 1) + 2, mo.kv_block_size);
  model->prepare_graphs(kv);  // as the engine does: decode graphs are recorded at load, never on first use
  model->warm_up(kv);         // and its load-time warm-up, before the first runs below
  const WeightCensus census = weight_census(dir, cfg);
  MemBandwidth bw;
  double dev_gbs = 0;  // a GPU's own memory (the ceiling of its decode); the host's for the CPU backend
  if (!a.get_flag("--no-membw")) {
    bw = measure_memory_bandwidth(ThreadPool::global());
    if (!be->is_cpu()) dev_gbs = be->device_read_gbs(size_t(4) << 30);
  }
  const double ceil_gbs = be->is_cpu() ? bw.read_gbs : dev_gbs;
  const std::string cpu = cpu_model_name();
  const std::string commit = source_commit();
  std::string mname = dir;
  while (!mname.empty() && mname.back() == '/') mname.pop_back();
  mname = mname.substr(mname.rfind('/') + 1);

  // Tests, each run once right after load and then `reps` times.
  std::vector<TestResult> results;
  Bencher bench(*model, kv, uint64_t(a.get_int("--seed", 1)));
  if (P > 0) {
    TestResult r;
    r.name = "pp" + std::to_string(P);
    r.tokens = P;
    results.push_back(r);
  }
  if (N > 0)
    for (int64_t b : batches) {
      TestResult r;
      r.name = "tg" + std::to_string(N) + (b > 1 ? "@b" + std::to_string(b) : "");
      r.tokens = N * b;
      r.batch = b;
      r.bytes_per_step = step_bytes(census, cfg, b);
      r.steps = N;
      results.push_back(r);
    }
  auto run_once = [&](TestResult& r) { return r.name[0] == 'p' ? bench.prefill(P) : bench.decode(N, r.batch); };
  // A 512 MiB buffer read right after each steady decode run (CPU backends with the bandwidth test on).
  const bool paired = be->is_cpu() && bw.read_gbs > 0;
  const size_t read_floats = paired ? (size_t(512) << 20) / 4 : 0;
  std::unique_ptr<float, void (*)(void*)> read_buf(
      paired ? static_cast<float*>(std::aligned_alloc(64, read_floats * 4)) : nullptr, std::free);
  if (read_buf) std::memset(read_buf.get(), 0, read_floats * 4);
  float sink = 0;
  for (auto& r : results) r.first_s = run_once(r);
  for (int64_t i = 0; i < reps; ++i)
    for (auto& r : results) {
      r.runs_s.push_back(run_once(r));
      if (read_buf && r.steps > 0) {
        const double t0 = now_seconds();
        sink += read_pass(ThreadPool::global(), read_buf.get(), read_floats);
        r.read_gbs.push_back(double(read_floats) * 4 / (now_seconds() - t0) / 1e9);
      }
    }
  if (sink == 12345.f) std::printf(" ");  // keeps the reads

  // Report.
  const std::string backend = be->name();
  const int nthreads = ThreadPool::global().size();
  if (json_out || a.has("--json-out")) {
    const CpuFeatures feat_json = detect_cpu_features();
    json::Value o;
    o.set("model", mname);
    o.set("model_dir", dir);
    o.set("config", cfg.summary());
    o.set("size_bytes", census.bytes);
    o.set("params", census.params);
    o.set("backend", backend);
    o.set("threads", nthreads);
    o.set("cpu", cpu);
    o.set("avx512", feat_json.has_avx512());
    o.set("avx512_vnni", feat_json.avx512vnni);
    o.set("commit", commit);
    o.set("load_s", load_s);
    o.set("mem_read_GBps", bw.read_gbs);
    o.set("mem_copy_GBps", bw.copy_gbs);
    if (!be->is_cpu()) o.set("device_read_GBps", dev_gbs);
    json::Value tests;
    for (const auto& r : results) {
      std::vector<double> tps;
      for (double s : r.runs_s) tps.push_back(double(r.tokens) / s);
      const Stats st = stats(tps);
      json::Value t;
      t.set("test", r.name);
      t.set("batch", r.batch);
      t.set("tokens_per_run", r.tokens);
      t.set("tps_mean", st.mean);
      t.set("tps_stddev", st.sd);
      t.set("first_run_tps", double(r.tokens) / r.first_s);
      t.set("first_run_s", r.first_s);
      t.set("steady_run_s_median", median(r.runs_s));
      if (r.steps > 0) {
        const double step_s = double(r.tokens) / st.mean / double(r.steps);
        t.set("weight_bytes_per_step", r.bytes_per_step);
        t.set("weight_GBps", r.bytes_per_step / step_s / 1e9);
        if (ceil_gbs > 0) {
          t.set("bw_fraction", r.bytes_per_step / step_s / 1e9 / ceil_gbs);
          t.set("roofline_tps", ceil_gbs * 1e9 / r.bytes_per_step * double(r.batch));
        }
        if (!r.read_gbs.empty()) {
          json::Value rb;
          for (double g : r.read_gbs) rb.push_back(g);
          t.set("read_GBps_after_each_run", std::move(rb));
          t.set("bw_fraction_paired_median", paired_fraction(r));
        }
      }
      tests.push_back(std::move(t));
    }
    o.set("tests", std::move(tests));
    const std::string text = json::dump(o, json::DumpOptions{2}) + "\n";
    if (a.has("--json-out")) {
      FILE* f = std::fopen(a.get("--json-out").c_str(), "w");
      if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size()) fail("cannot write ", a.get("--json-out"));
      std::fclose(f);
    }
    if (json_out) {
      std::fputs(text.c_str(), stdout);
      return 0;
    }
  }
  std::printf("mmfp4 bench  commit %s\n", commit.c_str());
  const CpuFeatures feat = detect_cpu_features();
  std::printf("machine      %s, %u logical CPUs, AVX2 %s, AVX-512 F/BW/VL/DQ %s, VNNI %s; backend %s\n", cpu.c_str(),
              std::thread::hardware_concurrency(), feat.avx2 ? "yes" : "no", feat.has_avx512() ? "yes" : "no",
              feat.avx512vnni ? "yes" : "no", backend.c_str());
  std::printf("model        %s (%s)\n", dir.c_str(), cfg.summary().c_str());
  std::printf("             %s of weights, %s parameters; per decode token %.3f GB of weights (routed experts: "
              "top-%ld of %ld)\n",
              human_bytes(census.bytes).c_str(), human_count(census.params).c_str(), step_bytes(census, cfg, 1) / 1e9,
              long(cfg.num_experts_per_tok), long(cfg.n_routed_experts));
  std::printf("load         %.2f s\n", load_s);
  if (bw.read_gbs > 0)
    std::printf("%s read %.1f GB/s, copy %.1f GB/s (%d threads, %.0f MiB buffer, this run)\n",
                be->is_cpu() ? "memory      " : "host memory ", bw.read_gbs, bw.copy_gbs, bw.threads,
                double(bw.bytes) / (1024.0 * 1024.0));
  if (dev_gbs > 0)
    std::printf("device mem   read %.1f GB/s (streaming read of up to 4 GiB, this run): the decode ceiling below\n",
                dev_gbs);
  std::printf("\n| %-22s | %10s | %9s | %-28s | %7s | %10s | %18s |\n", "model", "size", "params", "backend", "threads",
              "test", "t/s");
  std::printf("| %-22s | %10s | %9s | %-28s | %7s | %10s | %18s |\n", "----------------------", "---------:",
              "--------:", "----------------------------", "------:", "---------:", "-----------------:");
  for (const auto& r : results) {
    std::vector<double> tps;
    for (double s : r.runs_s) tps.push_back(double(r.tokens) / s);
    const Stats st = stats(tps);
    char tp[64];
    std::snprintf(tp, sizeof tp, "%.2f ± %.2f", st.mean, st.sd);
    std::printf("| %-22s | %10s | %9s | %-28s | %7d | %10s | %18s |\n", mname.substr(0, 22).c_str(),
                human_bytes(census.bytes).c_str(), human_count(census.params).c_str(), backend.substr(0, 28).c_str(),
                nthreads, r.name.c_str(), tp);
  }
  std::printf("\n");
  for (const auto& r : results) {
    std::vector<double> tps;
    for (double s : r.runs_s) tps.push_back(double(r.tokens) / s);
    const Stats st = stats(tps);
    const double steady = median(r.runs_s);
    std::printf("%-10s first run after load %.3f s vs steady (median) %.3f s (x%.2f)", r.name.c_str(), r.first_s,
                steady, r.first_s / steady);
    if (r.steps > 0) {
      const double step_s = steady / double(r.steps);
      const double gbs = r.bytes_per_step / step_s / 1e9;
      std::printf("; weights %.3f GB/step%s -> %.1f GB/s", r.bytes_per_step / 1e9, r.batch > 1 ? " (uniform-routing estimate)" : "",
                  gbs);
      if (ceil_gbs > 0) {
        const double roof = ceil_gbs * 1e9 / r.bytes_per_step * double(r.batch);
        std::printf(" = %.0f%% of read bandwidth; roofline %.1f t/s (measured x%.2f below)", 100 * gbs / ceil_gbs,
                    roof, roof / st.mean);
      }
      if (!r.read_gbs.empty()) {
        const double f = paired_fraction(r);
        std::printf("; paired with a read right after each run: %.0f%% of read bandwidth, x%.2f below the roofline",
                    100 * f, f > 0 ? 1 / f : 0.0);
      }
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace
MMFP4_COMMAND("bench", "prefill and decode speed of a model, with the machine's memory bandwidth (llama-bench style)",
              run_bench);
}  // namespace mmfp4::cli
