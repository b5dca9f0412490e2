// `mmfp4 synth`: random-weight checkpoints load and run (finite logits, every architecture's tensors present), and
// the KV cache of a GLM-4.7-Flash-shaped model costs (512 + 64) x 47 values per token.
#include <gtest/gtest.h>

#include <cmath>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "format/weight.h"
#include "kv/kv_cache.h"
#include "model/synth.h"
#include "model_harness.h"

namespace mmfp4::testing {
namespace {

std::string tmpdir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("mmfp4_test_synth_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

TEST(Synth, Glm47FlashKvCacheCost) {
  const ModelConfig cfg = ModelConfig::parse(builtin_config("glm-4.7-flash"), "glm");
  EXPECT_EQ(cfg.num_layers, 47);
  EXPECT_EQ(cfg.kv_values_per_token_layer(), 512 + 64);
  EXPECT_EQ(KVCache::bytes_per_token(cfg, DType::BF16), (512 + 64) * 47 * 2);
  EXPECT_EQ(KVCache::bytes_per_token(cfg, DType::F32), (512 + 64) * 47 * 4);
}

class SynthArch : public ::testing::TestWithParam<std::pair<std::string, int>> {};

TEST_P(SynthArch, WritesALoadableCheckpointWithFiniteLogits) {
  const auto [src, hadamard] = GetParam();
  json::Value config = json::parse(read_file(shared_path(src) + "/config.json"));
  const std::string dst = tmpdir(std::to_string(hadamard) + std::filesystem::path(src).filename().string());
  SynthOptions o;
  o.hadamard_block = hadamard;
  o.shard_bytes = 1 << 20;  // several shards + an index
  const int64_t bytes = synthesize_checkpoint(config, dst, o);
  EXPECT_GT(bytes, 0);
  EXPECT_TRUE(file_exists(dst + "/model.safetensors.index.json"));
  Loaded m = load_model(dst);
  const std::vector<float> logits = prefill_logits(m, {1, 2, 3, 4, 5});
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  std::filesystem::remove_all(dst);
}

INSTANTIATE_TEST_SUITE_P(Archs, SynthArch,
                         ::testing::Values(std::make_pair(std::string("models/tiny-glm4-moe-lite"), 0),
                                           std::make_pair(std::string("models/tiny-glm4-moe-lite"), 64),
                                           std::make_pair(std::string("fixtures/parity/deepseek-v3"), 0),
                                           std::make_pair(std::string("fixtures/parity/qwen3-moe"), 64),
                                           std::make_pair(std::string("fixtures/parity/llama3"), 0)));

TEST(Synth, LayersOptionTruncatesTheConfig) {
  json::Value config = json::parse(read_file(shared_path("models/tiny-glm4-moe-lite") + "/config.json"));
  const std::string dst = tmpdir("layers");
  SynthOptions o;
  o.layers = 2;
  synthesize_checkpoint(config, dst, o);
  const ModelConfig cfg = ModelConfig::load(dst);
  EXPECT_EQ(cfg.num_layers, 2);
  EXPECT_EQ(cfg.layer_ffn.size(), 2u);
  EXPECT_THROW(synthesize_checkpoint(config, dst, o), Error);  // not empty, no --force
  o.layers = 99;
  o.force = true;
  EXPECT_THROW(synthesize_checkpoint(config, dst, o), Error);
  std::filesystem::remove_all(dst);
}

}  // namespace
}  // namespace mmfp4::testing
