// dequantize_model (what `mmfp4 dequantize` runs) as an oracle: each weight it writes is exactly
// HostWeight::dequantize() of the loaded tensor; other tensors converted exactly; padding dropped.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "format/checkpoint.h"
#include "format/dequantize_model.h"
#include "format/quantize_model.h"
#include "format/safetensors.h"
#include "format/weight.h"
#include "test_util.h"

using namespace mmfp4;

namespace {

// Logical shapes from the BF16 source next to a fixture.
std::function<bool(const std::string&, int64_t&, int64_t&)> shapes_from(const Checkpoint& src) {
  return [&src](const std::string& name, int64_t& n, int64_t& k) {
    const TensorInfo* t = src.find(name);
    if (!t || t->shape.size() != 2) return false;
    n = t->shape[0], k = t->shape[1];
    return true;
  };
}

class Dequantize : public ::testing::TestWithParam<const char*> {};

TEST_P(Dequantize, WritesExactlyWhatTheLoaderDequantizes) {
  const std::string fixture = test::shared_dir() + "/fixtures/parity-mmfp4/" + GetParam();
  auto source = Checkpoint::open(test::shared_dir() + "/fixtures/parity/" + GetParam());
  test::TempDir out;
  DequantizeModelOptions opt;
  opt.logical_shape = shapes_from(*source);
  const DequantizeModelReport r = dequantize_model(fixture, out.path(), opt);
  auto q = Checkpoint::open(fixture);
  auto d = Checkpoint::open(out.path());
  const QuantConfig qc = QuantConfig::load(fixture);
  EXPECT_GT(r.dequantized, 0);
  EXPECT_EQ(d->tensors().size(), source->tensors().size());  // the source's tensors, siblings gone
  for (const TensorInfo* t : d->tensors()) {
    ASSERT_EQ(t->dtype, DType::F32) << t->name;
    const TensorInfo& s = source->get(t->name);
    ASSERT_EQ(t->shape, s.shape) << t->name;
    const TensorInfo& stored = q->get(t->name);
    std::vector<float> want;
    if (stored.dtype == DType::U32) {
      want = load_weight(*q, t->name, s.shape[0], s.shape[1], qc).dequantize();
    } else {
      want.resize(size_t(stored.numel()));
      for (size_t i = 0; i < want.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, stored.data + 2 * i, 2);
        want[i] = f16_to_f32(h);
      }
    }
    EXPECT_EQ(std::memcmp(t->data, want.data(), t->nbytes), 0) << t->name;
  }
  EXPECT_EQ(read_file(out / "config.json"), read_file(fixture + "/config.json"));
  EXPECT_FALSE(file_exists(out / "quantization_config.json"));
  EXPECT_TRUE(file_exists(out / "model.safetensors.index.json"));  // the fixture is a one-shard index folder
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Dequantize, ::testing::Values("llama3", "glm4-moe-lite"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           std::string s = i.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(DequantizeFolder, Bf16OutputAndPaddingDropped) {
  // A rotated weight with k = 96 (stored padded to 128) and a norm, quantized by us.
  test::TempDir src, q, d16, dpad;
  std::vector<float> w(8 * 96), norm(96, 1.5f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * float(int(i * 37 % 101) - 50);
  SafetensorsWriter::write_file(src / "model.safetensors", {{"layer.proj.weight", DType::F32, {8, 96}, w.data()},
                                                            {"layer.norm.weight", DType::F32, {96}, norm.data()}});
  test::write_bytes(src / "tokenizer.json", "{}");
  QuantizeModelOptions qo;
  qo.quant = {32, 64};
  quantize_model(src.path(), q.path(), qo);
  auto qck = Checkpoint::open(q.path());
  ASSERT_EQ(qck->get("layer.proj.weight").shape, (std::vector<int64_t>{8, 16}));  // 128 / 8

  DequantizeModelOptions opt;
  opt.dtype = DType::BF16;
  opt.logical_shape = [](const std::string& name, int64_t& n, int64_t& k) {
    if (name != "layer.proj.weight") return false;
    n = 8, k = 96;
    return true;
  };
  dequantize_model(q.path(), d16.path(), opt);
  auto d = Checkpoint::open(d16.path());
  const TensorInfo& t = d->get("layer.proj.weight");
  ASSERT_EQ(t.dtype, DType::BF16);
  ASSERT_EQ(t.shape, (std::vector<int64_t>{8, 96}));
  const std::vector<float> want = load_weight(*qck, "layer.proj.weight", 8, 96, QuantConfig::load(q.path())).dequantize();
  for (size_t i = 0; i < want.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    ASSERT_EQ(h, f32_to_bf16(want[i])) << i;
  }
  EXPECT_EQ(d->get("layer.norm.weight").dtype, DType::BF16);
  EXPECT_TRUE(file_exists(d16 / "tokenizer.json"));
  // Without the logical shape the stored (padded) width is all there is.
  dequantize_model(q.path(), dpad.path(), {});
  EXPECT_EQ(Checkpoint::open(dpad.path())->get("layer.proj.weight").shape, (std::vector<int64_t>{8, 128}));
  DequantizeModelOptions bad;
  bad.dtype = DType::I8;
  test::TempDir x;
  EXPECT_THROW(dequantize_model(q.path(), x.path(), bad), Error);
}

}  // namespace
