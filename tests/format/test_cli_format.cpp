// The mmfp4 binary as a user runs it: quantize a shared model, inspect the result (text and --json), dequantize it;
// and inspect refusing broken folders with messages that name the file, tensor or field.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>

#include "core/json.h"
#include "core/mapped_file.h"
#include "format/checkpoint.h"
#include "format/safetensors.h"
#include "format/weight.h"
#include "common/cli_runner.h"
#include "test_util.h"

using namespace mmfp4;

namespace {

using test::CliRun;
using test::mmfp4;

const std::string kShared = test::shared_dir();

TEST(Cli, QuantizeInspectDequantizeTinyGlm) {
  test::TempDir q, d;
  const std::string dst = q / "out";
  CliRun r = mmfp4("quantize " + kShared + "/models/tiny-glm4-moe-lite " + dst + " --hadamard 64");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("quantized 293 tensors"), std::string::npos) << r.out;
  // The same tensors as metal-marlin's twin.
  auto ours = Checkpoint::open(dst);
  auto theirs = Checkpoint::open(kShared + "/models/tiny-glm4-moe-lite-mmfp4-h64");
  ASSERT_EQ(ours->tensors().size(), theirs->tensors().size());
  for (size_t i = 0; i < ours->tensors().size(); ++i) {
    ASSERT_EQ(ours->tensors()[i]->name, theirs->tensors()[i]->name);
    EXPECT_EQ(std::memcmp(ours->tensors()[i]->data, theirs->tensors()[i]->data, ours->tensors()[i]->nbytes), 0);
  }
  EXPECT_EQ(read_file(dst + "/tokenizer.json"), read_file(kShared + "/models/tiny-glm4-moe-lite/tokenizer.json"));

  r = mmfp4("inspect " + dst);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  for (const char* s : {"glm4_moe_lite: 6 layers", "293 MMFP4", "293 rotated (block 64: 293)", "size 128: 293",
                        "memory      weights", "bytes per token", "check       ok"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;

  r = mmfp4("inspect --json " + dst);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json::Value j = json::parse(r.out, "inspect --json");
  EXPECT_TRUE(j["ok"].as_bool());
  EXPECT_EQ(j["architecture"]["model_type"].as_string(), "glm4_moe_lite");
  EXPECT_EQ(j["quantization"]["rotated"].as_int(), 293);
  EXPECT_EQ(j["quantization"]["mmfp4_linear_weights"].as_int(), 293);
  EXPECT_EQ(j["tensors"]["by_dtype"]["U32"].as_int(), 293);
  EXPECT_EQ(j["memory"]["kv_bytes_per_token_f16"].as_int(), (128 + 32) * 6 * 2);
  EXPECT_GT(j["memory"]["weights_bytes"].as_int(), 13000000);

  // Refuses to overwrite.
  r = mmfp4("quantize " + kShared + "/models/tiny-glm4-moe-lite " + dst);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("not empty (pass --force"), std::string::npos) << r.err;

  r = mmfp4("dequantize " + dst + " " + d.path() + " --force");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto dense = Checkpoint::open(d.path());
  const std::string name = "model.layers.2.mlp.experts.5.down_proj.weight";
  const std::vector<float> want = load_weight(*ours, name, 256, 128, QuantConfig::load(dst)).dequantize();
  ASSERT_EQ(dense->get(name).dtype, DType::F32);
  EXPECT_EQ(std::memcmp(dense->get(name).data, want.data(), want.size() * 4), 0);
  EXPECT_EQ(mmfp4("inspect " + d.path()).rc, 0);  // the dense folder loads too
}

TEST(Cli, InspectNamesTheProblem) {
  // A required tensor missing.
  test::TempDir a;
  auto src = Checkpoint::open(kShared + "/fixtures/parity/llama3");
  std::vector<SafetensorsWriter::Item> items;
  for (const TensorInfo* t : src->tensors())
    if (t->name != "model.layers.1.self_attn.k_proj.weight") items.push_back({t->name, t->dtype, t->shape, t->data});
  SafetensorsWriter::write_file(a / "model.safetensors", items);
  test::write_bytes(a / "config.json", read_file(kShared + "/fixtures/parity/llama3/config.json"));
  CliRun r = mmfp4("inspect " + a.path());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("tensor 'model.layers.1.self_attn.k_proj.weight' is missing (expected [64, 256])"),
            std::string::npos)
      << r.err;
  r = mmfp4("inspect --json " + a.path());
  EXPECT_EQ(r.rc, 1);
  EXPECT_FALSE(json::parse(r.out)["ok"].as_bool());

  // A config field of the wrong type.
  test::write_bytes(a / "config.json", "{\"model_type\": \"llama\", \"hidden_size\": \"x\"}");
  r = mmfp4("inspect " + a.path());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;

  // Shapes the config does not imply (the metal-marlin folder under a config with another q_lora_rank).
  test::TempDir b;
  const std::string fx = kShared + "/fixtures/parity-mmfp4/glm4-moe-lite";
  json::Value cfg = json::parse(read_file(fx + "/config.json"));
  cfg.set("q_lora_rank", 64);
  test::write_bytes(b / "config.json", json::dump(cfg));
  test::write_bytes(b / "model.safetensors", read_file(fx + "/model.safetensors"));
  r = mmfp4("inspect " + b.path());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("'model.layers.0.self_attn.q_a_proj.weight' (U32 [128, 32]) in " + b.path() +
                       "/model.safetensors: expected MMFP4 codes [64, 32]"),
            std::string::npos)
      << r.err;

  // Layers past num_hidden_layers (like GLM's MTP layer) are reported, not refused.
  cfg = json::parse(read_file(fx + "/config.json"));
  cfg.set("num_hidden_layers", 2);
  json::Value types = json::Value::array();
  types.push_back("dense");
  types.push_back("sparse");
  cfg.set("mlp_layer_types", types);
  test::write_bytes(b / "config.json", json::dump(cfg));
  r = mmfp4("inspect " + b.path());
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("tensors of layers >= num_hidden_layers (2)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ignored"), std::string::npos) << r.out;

  // A corrupt file.
  test::write_bytes(b / "model.safetensors", "not a safetensors file");
  r = mmfp4("inspect " + b.path());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find(b.path() + "/model.safetensors: header length"), std::string::npos) << r.err;
}

TEST(Cli, InspectsEverySharedMmfp4Folder) {
  for (const char* d : {"fixtures/parity-mmfp4/llama3", "fixtures/parity-mmfp4/qwen3-moe",
                        "fixtures/parity-mmfp4/deepseek-v3", "fixtures/parity-mmfp4/glm4-moe-lite",
                        "models/tiny-qwen3-mmfp4", "models/tiny-glm4-moe-lite-mmfp4-h64", "models/tiny-qwen3"}) {
    const CliRun r = mmfp4("inspect " + kShared + "/" + d);
    EXPECT_EQ(r.rc, 0) << d << "\n" << r.out << r.err;
  }
}

TEST(Cli, UsageErrors) {
  EXPECT_NE(mmfp4("quantize").rc, 0);
  EXPECT_NE(mmfp4("quantize a b --group-size x").rc, 0);
  const CliRun r = mmfp4("dequantize " + kShared + "/models/tiny-qwen3-mmfp4 /tmp/never --dtype f8");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("expected f32 or bf16"), std::string::npos) << r.err;
}

}  // namespace
