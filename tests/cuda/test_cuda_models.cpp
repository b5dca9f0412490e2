// Whole models on the CUDA backend: parity with the transformers references in ../shared (every fixture and model)
// and the invariants of tests/model/test_invariants.cpp, within the tolerances of the GPU path:
//   * logits: max |gpu - ref| / max |ref| per position < kLogitTol. By default the GPU is nearly as exact as the
//     CPU reference: activations enter the tensor cores as hi + lo bf16 halves, weights are exact, the KV cache is
//     float32 (measured worst 2e-5 over all 12 models on the H100).
//   * greedy ids equal the reference's, except at a documented near-tie: where our top choice and the reference's
//     token are within kTieTol * max |logit| of each other (the test prints every such case); the continuation
//     is not compared after it.
//   * invariants (prefill == decode, batch == singles, graph == eager): kInvTol. Kernels are deterministic, so
//     repeated runs are bit-identical.
//   * the BF16 KV cache option (MMFP4_CUDA_KV=bf16): kBf16LogitTol on the dense and the trained models. On the
//     random-weight MoE fixtures its rounding flips near-tied routing decisions (measured logits errors up to 1.1
//     on deepseek-v3), so those are not held to a tolerance there (docs/cuda.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "cuda_test_util.h"
#include "model/model_harness.h"
#include "sampling/sampler.h"

namespace mmfp4::cudatest {
namespace {

using mmfp4::testing::decode_logits;
using mmfp4::testing::Loaded;
using mmfp4::testing::max_row_rel_err;
using mmfp4::testing::prefill_logits;

constexpr double kLogitTol = 1e-4;
constexpr double kTieTol = 2 * kLogitTol;
constexpr double kInvTol = 1e-4;
constexpr double kBf16LogitTol = 1e-2;

const std::vector<std::string> kAll = {"fixtures/parity/llama3",        "fixtures/parity-mmfp4/llama3",
                            "fixtures/parity/qwen3-moe",     "fixtures/parity-mmfp4/qwen3-moe",
                            "fixtures/parity/deepseek-v3",   "fixtures/parity-mmfp4/deepseek-v3",
                            "fixtures/parity/glm4-moe-lite", "fixtures/parity-mmfp4/glm4-moe-lite",
                            "models/tiny-qwen3",             "models/tiny-qwen3-mmfp4",
                            "models/tiny-glm4-moe-lite",     "models/tiny-glm4-moe-lite-mmfp4-h64"};

std::string param_name(const ::testing::TestParamInfo<std::string>& i) {
  std::string s = i.param;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

bool have_model(const std::string& dir) { return std::ifstream(dir + "/config.json").good(); }

Loaded load_cuda(const std::string& dir, int64_t graph_max_tokens = 64, DType kv = DType::F32) {
  Loaded m;
  m.be = make_backend("cuda");
  if (kv != DType::F32) static_cast<cuda::CudaBackend&>(*m.be).set_kv_dtype(kv);
  ModelOptions opt;
  opt.max_tokens = 128;
  opt.max_context = 512;
  opt.graph_max_tokens = graph_max_tokens;
  m.model = Model::load(dir, *m.be, opt);
  m.kv = std::make_unique<KVCache>(*m.be, m.model->config(), 256, opt.kv_block_size);
  m.model->prepare_graphs(*m.kv);
  return m;
}

// Greedy continuation with the cache (or recomputing everything each step), with every step's logits.
std::vector<int32_t> greedy_with_logits(Loaded& m, const std::vector<int32_t>& prompt, int n, bool use_cache,
                                        std::vector<std::vector<float>>* step_logits) {
  const int64_t V = m.vocab();
  std::vector<int32_t> seq = prompt, out;
  std::vector<float> logits(static_cast<size_t>(V));
  SeqCache sc;
  if (use_cache) {
    EXPECT_TRUE(sc.reserve(*m.kv, int64_t(prompt.size()) + n));
    Batch b;
    b.seqs.push_back(&sc);
    for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], int32_t(i), 0, i + 1 == prompt.size());
    m.model->forward(b, *m.kv, logits.data());
  }
  for (int step = 0; step < n; ++step) {
    if (!use_cache) {
      std::vector<float> all = prefill_logits(m, seq);
      std::memcpy(logits.data(), all.data() + (seq.size() - 1) * size_t(V), size_t(V) * 4);
    }
    step_logits->push_back(logits);
    const int32_t next = argmax(logits.data(), V);
    out.push_back(next);
    seq.push_back(next);
    if (step + 1 == n || !use_cache) continue;
    Batch d;
    d.seqs.push_back(&sc);
    d.add(next, int32_t(seq.size() - 1), 0, true);
    m.model->forward(d, *m.kv, logits.data());
  }
  if (use_cache) sc.clear(*m.kv);
  return out;
}

// Compares ids with `want`; at the first difference, accepts it as a near-tie when our logits put `want`'s token
// within kTieTol * max |logit| of our choice. Returns a description for the log.
std::string compare_greedy(const std::vector<int32_t>& got, const std::vector<int32_t>& want,
                           const std::vector<std::vector<float>>& logits, const std::string& what,
                           double tie_tol = kTieTol) {
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    if (got[i] == want[i]) continue;
    const auto& l = logits[i];
    double mx = 0;
    for (float v : l) mx = std::max(mx, std::fabs(double(v)));
    const double gap = double(l[size_t(got[i])]) - double(l[size_t(want[i])]);
    EXPECT_LE(gap, tie_tol * mx) << what << ": step " << i << " chose " << got[i] << " instead of " << want[i]
                                 << " (gap " << gap << " of max |logit| " << mx << ": not a near-tie)";
    return cat(what, gap <= tie_tol * mx ? ": near-tie" : ": DIVERGED (not a near-tie)", " at step ", i, " (", got[i],
               " vs ", want[i], ", gap ", gap / mx, " of max |logit|)");
  }
  EXPECT_EQ(got.size(), want.size()) << what;
  return "";
}

class CudaParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaParity, LogitsAndGreedyMatchTransformers) {
  MMFP4_SKIP_WITHOUT_GPU();
  const std::string dir = shared_path(GetParam());
  if (!have_model(dir)) GTEST_SKIP() << dir << " is not here (set MMFP4_SHARED_DIR)";
  auto cases = mmfp4::testing::load_reference(dir);
  Loaded m = load_cuda(dir);
  const int64_t V = m.vocab();
  double worst = 0;
  std::string ties;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::vector<float> got = prefill_logits(m, c.input_ids);
    int64_t row = -1;
    const double err = max_row_rel_err(got.data(), c.logits.data(), int64_t(c.input_ids.size()), V, &row);
    worst = std::max(worst, err);
    EXPECT_LT(err, kLogitTol) << "case " << i << " (" << c.input_ids.size() << " tokens): worst position " << row;
    if (!c.greedy_ids.empty()) {
      std::vector<std::vector<float>> steps;
      const auto g = greedy_with_logits(m, c.input_ids, int(c.greedy_ids.size()), true, &steps);
      const std::string t = compare_greedy(g, c.greedy_ids, steps, cat("case ", i));
      if (!t.empty()) ties += "\n    " + t;
    }
  }
  std::printf("  %s: %zu cases, worst logits relative error %.3g%s\n", GetParam().c_str(), cases.size(), worst,
              ties.c_str());
}

INSTANTIATE_TEST_SUITE_P(All, CudaParity, ::testing::ValuesIn(kAll), param_name);

// The BF16 KV cache on the models whose routing it cannot flip (dense) and on the trained models.
class CudaParityBf16Kv : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaParityBf16Kv, LogitsAndGreedyWithinBf16Tolerance) {
  MMFP4_SKIP_WITHOUT_GPU();
  const std::string dir = shared_path(GetParam());
  if (!have_model(dir)) GTEST_SKIP() << dir << " is not here (set MMFP4_SHARED_DIR)";
  auto cases = mmfp4::testing::load_reference(dir);
  Loaded m = load_cuda(dir, 64, DType::BF16);
  double worst = 0;
  std::string ties;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::vector<float> got = prefill_logits(m, c.input_ids);
    const double err = max_row_rel_err(got.data(), c.logits.data(), int64_t(c.input_ids.size()), m.vocab());
    worst = std::max(worst, err);
    EXPECT_LT(err, kBf16LogitTol) << "case " << i;
    if (!c.greedy_ids.empty()) {
      std::vector<std::vector<float>> steps;
      const auto g = greedy_with_logits(m, c.input_ids, int(c.greedy_ids.size()), true, &steps);
      const std::string t = compare_greedy(g, c.greedy_ids, steps, cat("case ", i), 2 * kBf16LogitTol);
      if (!t.empty()) ties += "\n    " + t;
    }
  }
  std::printf("  bf16 KV %s: worst logits relative error %.3g%s\n", GetParam().c_str(), worst, ties.c_str());
}

INSTANTIATE_TEST_SUITE_P(DenseAndTrained, CudaParityBf16Kv,
                         ::testing::Values("fixtures/parity/llama3", "fixtures/parity-mmfp4/llama3",
                                           "models/tiny-qwen3", "models/tiny-qwen3-mmfp4", "models/tiny-glm4-moe-lite",
                                           "models/tiny-glm4-moe-lite-mmfp4-h64"),
                         param_name);

std::vector<int32_t> random_ids(int64_t vocab, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

class CudaInvariants : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible (" << cuda_status_message() << ")";
    dir_ = shared_path(GetParam());
    if (!have_model(dir_)) GTEST_SKIP() << dir_ << " is not here (set MMFP4_SHARED_DIR)";
    m_ = load_cuda(dir_);
  }
  std::string dir_;
  Loaded m_;
};

TEST_P(CudaInvariants, PrefillEqualsTokenByTokenDecode) {
  const int64_t V = m_.vocab();
  const auto ids = random_ids(V, 70, 1);
  const std::vector<float> dec = decode_logits(m_, ids);  // graph-replayed steps
  double worst = 0;
  for (size_t len = 1; len <= ids.size(); ++len) {
    std::vector<int32_t> prefix(ids.begin(), ids.begin() + long(len));
    const std::vector<float> pre = prefill_logits(m_, prefix);
    int64_t row = -1;
    const double err = max_row_rel_err(pre.data(), dec.data(), int64_t(len), V, &row);
    worst = std::max(worst, err);
    ASSERT_LT(err, kInvTol) << "prompt length " << len << ", position " << row;
  }
  std::printf("  %s: prefill vs decode worst %.3g\n", GetParam().c_str(), worst);
}

TEST_P(CudaInvariants, CachedGenerationEqualsUncached) {
  const auto prompt = random_ids(m_.vocab(), 5, 2);
  std::vector<std::vector<float>> lc, lu;
  const auto a = greedy_with_logits(m_, prompt, 12, true, &lc);
  const auto b = greedy_with_logits(m_, prompt, 12, false, &lu);
  const std::string t = compare_greedy(a, b, lc, "cached vs uncached");
  if (!t.empty()) std::printf("  %s: %s\n", GetParam().c_str(), t.c_str());
}

TEST_P(CudaInvariants, BatchEqualsSingles) {
  const int64_t V = m_.vocab();
  const std::vector<std::vector<int32_t>> prompts = {random_ids(V, 7, 3), random_ids(V, 1, 4), random_ids(V, 23, 5),
                                                     random_ids(V, 4, 6)};
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) alone.push_back(prefill_logits(m_, p));
  std::vector<SeqCache> caches(prompts.size());
  Batch b;
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_TRUE(caches[s].reserve(*m_.kv, int64_t(prompts[s].size())));
    b.seqs.push_back(&caches[s]);
  }
  std::vector<std::pair<size_t, size_t>> order;
  for (size_t pos = 0; pos < 23; ++pos)
    for (size_t s = 0; s < prompts.size(); ++s)
      if (pos < prompts[s].size()) {
        b.add(prompts[s][pos], int32_t(pos), int32_t(s), true);
        order.emplace_back(s, pos);
      }
  std::vector<float> logits(b.size() * size_t(V));
  m_.model->forward(b, *m_.kv, logits.data());
  double worst = 0;
  for (size_t r = 0; r < order.size(); ++r) {
    const auto [s, pos] = order[r];
    const double err = max_row_rel_err(logits.data() + r * size_t(V), alone[s].data() + pos * size_t(V), 1, V);
    worst = std::max(worst, err);
    ASSERT_LT(err, kInvTol) << "sequence " << s << " position " << pos;
  }
  // One decode step of all four together (a graph bucket of 4) vs each alone.
  Batch d;
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_TRUE(caches[s].reserve(*m_.kv, int64_t(prompts[s].size()) + 1));
    d.seqs.push_back(&caches[s]);
    d.add(int32_t(s + 1), int32_t(prompts[s].size()), int32_t(s), true);
  }
  std::vector<float> step(prompts.size() * size_t(V));
  m_.model->forward(d, *m_.kv, step.data());
  for (size_t s = 0; s < prompts.size(); ++s) {
    auto p = prompts[s];
    p.push_back(int32_t(s + 1));
    const std::vector<float> ref = prefill_logits(m_, p);
    const double err = max_row_rel_err(step.data() + s * size_t(V), ref.data() + (p.size() - 1) * size_t(V), 1, V);
    worst = std::max(worst, err);
    EXPECT_LT(err, kInvTol) << "decode step of sequence " << s;
  }
  for (auto& c : caches) c.clear(*m_.kv);
  std::printf("  %s: batch vs singles worst %.3g\n", GetParam().c_str(), worst);
}

TEST_P(CudaInvariants, RepeatedRunsAreIdentical) {
  const auto ids = random_ids(m_.vocab(), 17, 7);
  const auto a = prefill_logits(m_, ids), b = prefill_logits(m_, ids);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  const auto c = decode_logits(m_, ids), d = decode_logits(m_, ids);
  EXPECT_EQ(0, std::memcmp(c.data(), d.data(), c.size() * sizeof(float)));
}

TEST_P(CudaInvariants, GraphReplayEqualsEagerSteps) {
  Loaded eager = load_cuda(dir_, /*graph_max_tokens=*/0);
  const auto ids = random_ids(m_.vocab(), 20, 8);
  const auto a = decode_logits(m_, ids), b = decode_logits(eager, ids);
  const double err = max_row_rel_err(a.data(), b.data(), int64_t(ids.size()), m_.vocab());
  EXPECT_LT(err, 1e-6) << "a one-token graph runs the same kernels as the eager step";
}

INSTANTIATE_TEST_SUITE_P(All, CudaInvariants, ::testing::ValuesIn(kAll), param_name);

}  // namespace
}  // namespace mmfp4::cudatest
