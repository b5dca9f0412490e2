// Whole-model parity with Hugging Face transformers (float32 references in ../shared): logits at every position
// within 1e-4 relative (max abs error over the row / max abs reference), and greedy continuations with the KV cache
// equal to the reference ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "model_harness.h"
#include "sampling/sampler.h"

namespace mmfp4::testing {
namespace {

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, LogitsAndGreedyMatchTransformers) {
  const std::string dir = shared_path(GetParam());
  auto cases = load_reference(dir);
  Loaded m = load_model(dir);
  const int64_t V = m.vocab();
  double worst = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const RefCase& c = cases[i];
    std::vector<float> got = prefill_logits(m, c.input_ids);
    int64_t row = -1;
    const double err = max_row_rel_err(got.data(), c.logits.data(), int64_t(c.input_ids.size()), V, &row);
    worst = std::max(worst, err);
    EXPECT_LT(err, 1e-4) << "case " << i << " (" << c.input_ids.size() << " tokens): worst position " << row;
    if (!c.greedy_ids.empty()) {
      std::vector<int32_t> g = greedy(m, c.input_ids, int(c.greedy_ids.size()), /*use_cache=*/true);
      EXPECT_EQ(g, c.greedy_ids) << "case " << i;
    }
  }
  std::printf("  %s: %zu cases, worst logits relative error %.3g\n", GetParam().c_str(), cases.size(), worst);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity,
                         ::testing::Values("fixtures/parity/llama3", "fixtures/parity-mmfp4/llama3",
                                           "fixtures/parity/qwen3-moe", "fixtures/parity-mmfp4/qwen3-moe",
                                           "fixtures/parity/deepseek-v3", "fixtures/parity-mmfp4/deepseek-v3",
                                           "fixtures/parity/glm4-moe-lite", "fixtures/parity-mmfp4/glm4-moe-lite",
                                           "models/tiny-qwen3", "models/tiny-qwen3-mmfp4",
                                           "models/tiny-glm4-moe-lite", "models/tiny-glm4-moe-lite-mmfp4-h64"),
                         folder_param_name);

}  // namespace
}  // namespace mmfp4::testing
