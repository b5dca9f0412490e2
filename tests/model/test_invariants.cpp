// The invariants the seed stack broke, on every model: (a) a forward over the whole prompt equals token-by-token
// decode at every position, for every prompt length 1..70; (b) generation with the KV cache equals generation that
// recomputes the whole sequence each step; (c) a batch of different-length prompts equals each prompt alone;
// (d) repeated runs are bit-identical. On the CPU reference path every row is computed in an order that does not
// depend on the batch, so (a) and (c) hold to the last bit; the tolerance leaves room for faster kernels only.
#include <gtest/gtest.h>

#include <cstring>

#include "model_harness.h"

namespace mmfp4::testing {
namespace {

constexpr double kTol = 1e-5;

class Invariants : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { m_ = load_model(shared_path(GetParam())); }
  Loaded m_;
};

TEST_P(Invariants, PrefillEqualsTokenByTokenDecodeForEveryLength) {
  double worst = 0;
  check_prefill_equals_decode(m_, 70, kTol, &worst);
}

TEST_P(Invariants, CachedGenerationEqualsUncached) {
  const auto prompt = random_ids(m_.vocab(), 5, 2);
  EXPECT_EQ(greedy(m_, prompt, 12, true), greedy(m_, prompt, 12, false));
}

TEST_P(Invariants, BatchEqualsSingles) {
  double worst = 0;
  check_batch_equals_singles(m_, kTol, &worst);
}

TEST_P(Invariants, RepeatedRunsAreIdentical) {
  const auto ids = random_ids(m_.vocab(), 17, 7);
  const auto a = prefill_logits(m_, ids);
  const auto b = prefill_logits(m_, ids);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

TEST_P(Invariants, WarmUpLeavesTheCacheAndTheResults) { check_warm_up_changes_nothing(m_); }

INSTANTIATE_TEST_SUITE_P(Models, Invariants,
                         ::testing::Values("fixtures/parity/llama3", "fixtures/parity-mmfp4/qwen3-moe",
                                           "fixtures/parity/deepseek-v3", "fixtures/parity-mmfp4/glm4-moe-lite",
                                           "models/tiny-qwen3-mmfp4", "models/tiny-glm4-moe-lite-mmfp4-h64"),
                         folder_param_name);

}  // namespace
}  // namespace mmfp4::testing
