// quantize_model (what `mmfp4 quantize` runs) against metal-marlin's own folders: the same tensors, names, dtypes,
// shapes and bytes, from the BF16 sources; dequantizing both gives identical weights, close to the BF16 ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "format/checkpoint.h"
#include "format/quantize_model.h"
#include "format/safetensors.h"
#include "format/weight.h"
#include "test_util.h"

using namespace mmfp4;

namespace {

using test::Twin;
using test::kTwins;

QuantizeModelOptions options_like(const std::string& twin_dir) {
  const QuantConfig qc = QuantConfig::load(twin_dir);
  QuantizeModelOptions o;
  o.quant.group_size = qc.group_size;
  o.quant.hadamard_block = qc.use_hadamard ? qc.hadamard_block_size : 0;
  return o;
}

class QuantizeModel : public ::testing::TestWithParam<Twin> {};

TEST_P(QuantizeModel, ReproducesMetalMarlinsFolder) {
  const Twin& tw = GetParam();
  const std::string src = test::shared_dir() + "/" + tw.src, theirs_dir = test::shared_dir() + "/" + tw.dst;
  test::TempDir out;
  const QuantizeModelReport r = quantize_model(src, out.path(), options_like(theirs_dir));
  auto ours = Checkpoint::open(out.path());
  auto theirs = Checkpoint::open(theirs_dir);

  // The same tensors, names, dtypes, shapes and bytes: codes, scales, siblings, and BF16 tensors turned into F16.
  ASSERT_EQ(ours->tensors().size(), theirs->tensors().size());
  for (size_t i = 0; i < ours->tensors().size(); ++i) {
    const TensorInfo& a = *ours->tensors()[i];
    const TensorInfo& b = *theirs->tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.dtype, b.dtype) << a.name;
    ASSERT_EQ(a.shape, b.shape) << a.name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name << " differs";
  }
  int64_t n_codes = 0;
  for (const TensorInfo* t : theirs->tensors()) n_codes += t->dtype == DType::U32;
  EXPECT_EQ(r.quantized, n_codes);
  EXPECT_TRUE(r.kept_as_bf16.empty());

  // Side files copied unchanged; a quantization_config.json that says what was done.
  for (const char* f : {"config.json", "generation_config.json"})
    EXPECT_EQ(read_file(out / f), read_file(src + "/" + f)) << f;
  const json::Value qc = json::parse(read_file(out / "quantization_config.json"));
  const QuantConfig their_qc = QuantConfig::load(theirs_dir);
  EXPECT_EQ(qc["format"].as_string(), "mmfp4_e2m1_marlin");
  EXPECT_EQ(qc["use_hadamard"].as_bool(), their_qc.use_hadamard);
  EXPECT_EQ(qc["group_size"].as_int(), 128);
  EXPECT_EQ(qc["hadamard_block_size"].as_int(), 64);
  EXPECT_EQ(qc["method"].as_string(), "rtn");
}

TEST_P(QuantizeModel, DequantizesLikeTheirsAndCloseToTheSource) {
  const Twin& tw = GetParam();
  const std::string src_dir = test::shared_dir() + "/" + tw.src, theirs_dir = test::shared_dir() + "/" + tw.dst;
  test::TempDir out;
  quantize_model(src_dir, out.path(), options_like(theirs_dir));
  auto src = Checkpoint::open(src_dir);
  auto ours = Checkpoint::open(out.path());
  auto theirs = Checkpoint::open(theirs_dir);
  const QuantConfig our_qc = QuantConfig::load(out.path()), their_qc = QuantConfig::load(theirs_dir);
  double sum_rel = 0;
  int count = 0;
  for (const TensorInfo* t : theirs->tensors()) {
    if (t->dtype != DType::U32) continue;
    const TensorInfo& s = src->get(t->name);
    const int64_t n = s.shape[0], k = s.shape[1];
    const std::vector<float> a = load_weight(*ours, t->name, n, k, our_qc).dequantize();
    const std::vector<float> b = load_weight(*theirs, t->name, n, k, their_qc).dequantize();
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << t->name;
    const std::vector<float> w = load_weight(*src, t->name, n, k, QuantConfig{}).dequantize();
    double err = 0, ref = 0;
    for (size_t i = 0; i < w.size(); ++i) err += double(a[i] - w[i]) * (a[i] - w[i]), ref += double(w[i]) * w[i];
    const double rel = std::sqrt(err / ref);
    EXPECT_LT(rel, 0.2) << t->name;  // FP4 with one scale per 128: ~0.1
    sum_rel += rel;
    ++count;
  }
  const double mean = sum_rel / count;
  std::printf("%s: mean relative error of %d dequantized weights vs BF16: %.4f\n", tw.name, count, mean);
  EXPECT_GT(mean, 0.05);
  EXPECT_LT(mean, 0.15);
}

INSTANTIATE_TEST_SUITE_P(Shared, QuantizeModel, ::testing::ValuesIn(kTwins),
                         [](const ::testing::TestParamInfo<Twin>& i) { return std::string(i.param.name); });

TEST(QuantizeModelFolder, ShardedSourceKeepsShardNamesAndWritesAnIndex) {
  // Split the llama3 fixture in two shards with an index, as Hugging Face saves large models.
  const std::string src_dir = test::shared_dir() + "/fixtures/parity/llama3";
  auto src = Checkpoint::open(src_dir);
  test::TempDir sharded;
  std::vector<SafetensorsWriter::Item> a, b;
  std::string wm;
  for (const TensorInfo* t : src->tensors()) {
    const bool first = t->name < "model.layers.1";
    (first ? a : b).push_back({t->name, t->dtype, t->shape, t->data});
    wm += std::string(wm.empty() ? "" : ", ") + "\"" + t->name + "\": \"model-0000" + (first ? "1" : "2") +
          "-of-00002.safetensors\"";
  }
  SafetensorsWriter::write_file(sharded / "model-00001-of-00002.safetensors", a);
  SafetensorsWriter::write_file(sharded / "model-00002-of-00002.safetensors", b);
  test::write_bytes(sharded / "model.safetensors.index.json", "{\"metadata\": {}, \"weight_map\": {" + wm + "}}");
  test::write_bytes(sharded / "config.json", read_file(src_dir + "/config.json"));
  test::write_bytes(sharded / "tokenizer.json", "{}");

  test::TempDir out, whole;
  QuantizeModelOptions opt;
  int64_t last = 0, total = 0;
  opt.progress = [&](int64_t done, int64_t all, const std::string&) { last = done, total = all; };
  const QuantizeModelReport r = quantize_model(sharded.path(), out.path(), opt);
  EXPECT_EQ(last, total);
  EXPECT_EQ(total, int64_t(src->tensors().size()));
  EXPECT_EQ(r.shards, (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(r.copied, (std::vector<std::string>{"config.json", "tokenizer.json"}));
  const json::Value idx = json::parse(read_file(out / "model.safetensors.index.json"));
  EXPECT_EQ(idx["metadata"]["format"].as_string(), "mmfp4");
  EXPECT_EQ(idx["weight_map"]["model.layers.1.mlp.up_proj.weight.scales"].as_string(),
            "model-00002-of-00002.safetensors");
  // The same tensors as quantizing the single-file folder.
  quantize_model(src_dir, whole.path(), {});
  auto x = Checkpoint::open(out.path());
  auto y = Checkpoint::open(whole.path());
  ASSERT_EQ(x->tensors().size(), y->tensors().size());
  for (size_t i = 0; i < x->tensors().size(); ++i) {
    ASSERT_EQ(x->tensors()[i]->name, y->tensors()[i]->name);
    EXPECT_EQ(std::memcmp(x->tensors()[i]->data, y->tensors()[i]->data, x->tensors()[i]->nbytes), 0);
  }
  EXPECT_FALSE(file_exists(whole / "model.safetensors.index.json"));  // one file, no index
}

TEST(QuantizeModelFolder, RefusesToOverwriteAndToRequantize) {
  const std::string src = test::shared_dir() + "/fixtures/parity/llama3";
  test::TempDir out;
  test::write_bytes(out / "notes.txt", "mine");
  try {
    quantize_model(src, out.path(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not empty (pass --force"), std::string::npos) << e.what();
  }
  test::write_bytes(out / "model-00009-of-00009.safetensors", "stale");
  QuantizeModelOptions force;
  force.force = true;
  quantize_model(src, out.path(), force);
  EXPECT_FALSE(file_exists(out / "model-00009-of-00009.safetensors"));  // stale shards go
  EXPECT_TRUE(file_exists(out / "notes.txt"));
  EXPECT_NO_THROW(Checkpoint::open(out.path()));
  test::TempDir again;
  try {
    quantize_model(out.path(), again.path(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already a quantized checkpoint"), std::string::npos) << e.what();
  }
  try {
    quantize_model(src, src, force);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is the source folder"), std::string::npos) << e.what();
  }
  QuantizeModelOptions bad;
  bad.quant.hadamard_block = 48;
  EXPECT_THROW(quantize_model(src, again.path(), bad), Error);
}

TEST(QuantizeModelFolder, WhichTensorsAreQuantized) {
  const QuantizeOptions g128{128, 0}, rot{32, 64};
  EXPECT_EQ(keep_reason("model.layers.0.self_attn.q_proj.weight", DType::BF16, {256, 256}, g128), "");
  EXPECT_EQ(keep_reason("model.layers.1.mlp.gate.weight", DType::BF16, {8, 256}, g128), "");  // the router
  EXPECT_NE(keep_reason("model.embed_tokens.weight", DType::BF16, {1024, 256}, g128), "");
  EXPECT_NE(keep_reason("lm_head.weight", DType::BF16, {1024, 256}, g128), "");
  EXPECT_NE(keep_reason("model.layers.0.input_layernorm.weight", DType::BF16, {256}, g128), "");
  EXPECT_NE(keep_reason("model.layers.0.self_attn.q_a_layernorm.weight", DType::BF16, {1, 256}, g128), "");
  EXPECT_NE(keep_reason("model.layers.0.self_attn.q_proj.bias", DType::BF16, {1, 256}, g128), "");
  EXPECT_NE(keep_reason("model.layers.1.mlp.gate.e_score_correction_bias", DType::F32, {8}, g128), "");
  EXPECT_NE(keep_reason("model.layers.0.mlp.experts.down_proj", DType::BF16, {8, 256, 128}, g128), "");
  EXPECT_NE(keep_reason("model.layers.0.mlp.down_proj.weight", DType::BF16, {256, 192}, g128), "");  // k % 128
  EXPECT_NE(keep_reason("model.layers.0.mlp.down_proj.weight", DType::I8, {256, 256}, g128), "");
  EXPECT_EQ(keep_reason("model.layers.0.mlp.down_proj.weight", DType::F32, {256, 96}, rot), "");  // padded to 128
}

}  // namespace
