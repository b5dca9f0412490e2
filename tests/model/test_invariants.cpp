// The invariants the seed stack broke, on every model: (a) a forward over the whole prompt equals token-by-token
// decode at every position, for every prompt length 1..70; (b) generation with the KV cache equals generation that
// recomputes the whole sequence each step; (c) a batch of different-length prompts equals each prompt alone;
// (d) repeated runs are bit-identical. On the CPU reference path every row is computed in an order that does not
// depend on the batch, so (a) and (c) hold to the last bit; the tolerance leaves room for faster kernels only.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "model_harness.h"
#include "sampling/sampler.h"

namespace mmfp4::testing {
namespace {

constexpr double kTol = 1e-5;

std::vector<int32_t> random_ids(int64_t vocab, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

class Invariants : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { m_ = load_model(shared_path(GetParam())); }
  Loaded m_;
};

TEST_P(Invariants, PrefillEqualsTokenByTokenDecodeForEveryLength) {
  const int64_t V = m_.vocab();
  const auto ids = random_ids(V, 70, 1);
  const std::vector<float> dec = decode_logits(m_, ids);  // [70, V]
  for (size_t len = 1; len <= ids.size(); ++len) {
    std::vector<int32_t> prefix(ids.begin(), ids.begin() + long(len));
    const std::vector<float> pre = prefill_logits(m_, prefix);
    int64_t row = -1;
    const double err = max_row_rel_err(pre.data(), dec.data(), int64_t(len), V, &row);
    ASSERT_LT(err, kTol) << "prompt length " << len << ", position " << row;
  }
}

TEST_P(Invariants, CachedGenerationEqualsUncached) {
  const auto prompt = random_ids(m_.vocab(), 5, 2);
  EXPECT_EQ(greedy(m_, prompt, 12, true), greedy(m_, prompt, 12, false));
}

TEST_P(Invariants, BatchEqualsSingles) {
  const int64_t V = m_.vocab();
  const std::vector<std::vector<int32_t>> prompts = {random_ids(V, 7, 3), random_ids(V, 1, 4), random_ids(V, 23, 5),
                                                     random_ids(V, 4, 6)};
  // Alone.
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) alone.push_back(prefill_logits(m_, p));
  // Together, interleaved so sequences do not come in contiguous runs.
  std::vector<SeqCache> caches(prompts.size());
  Batch b;
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_TRUE(caches[s].reserve(*m_.kv, int64_t(prompts[s].size())));
    b.seqs.push_back(&caches[s]);
  }
  std::vector<std::pair<size_t, size_t>> order;  // (seq, pos) of each logit row
  for (size_t pos = 0; pos < 23; ++pos)
    for (size_t s = 0; s < prompts.size(); ++s)
      if (pos < prompts[s].size()) {
        b.add(prompts[s][pos], int32_t(pos), int32_t(s), true);
        order.emplace_back(s, pos);
      }
  std::vector<float> logits(b.size() * size_t(V));
  m_.model->forward(b, *m_.kv, logits.data());
  for (size_t r = 0; r < order.size(); ++r) {
    const auto [s, pos] = order[r];
    const double err = max_row_rel_err(logits.data() + r * size_t(V), alone[s].data() + pos * size_t(V), 1, V);
    ASSERT_LT(err, kTol) << "sequence " << s << " position " << pos;
  }
  // Then one decode step for all four together vs alone.
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
    EXPECT_LT(err, kTol) << "decode step of sequence " << s;
  }
  for (auto& c : caches) c.clear(*m_.kv);
}

TEST_P(Invariants, RepeatedRunsAreIdentical) {
  const auto ids = random_ids(m_.vocab(), 17, 7);
  const auto a = prefill_logits(m_, ids);
  const auto b = prefill_logits(m_, ids);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Models, Invariants,
                         ::testing::Values("fixtures/parity/llama3", "fixtures/parity-mmfp4/qwen3-moe",
                                           "fixtures/parity/deepseek-v3", "fixtures/parity-mmfp4/glm4-moe-lite",
                                           "models/tiny-qwen3-mmfp4", "models/tiny-glm4-moe-lite-mmfp4-h64"),
                         folder_param_name);

}  // namespace
}  // namespace mmfp4::testing
