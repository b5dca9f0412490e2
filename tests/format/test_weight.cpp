// load_weight on every layout docs/format.md accepts (canonical, transposed marlin_fp4 words, transposed scales,
// every scale-key spelling, inferred group size, rotation with padding, unaligned data), the broken
// finish_quantization variant refused, and the messages for shape mismatches.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "format/checkpoint.h"
#include "format/quantizer.h"
#include "format/safetensors.h"
#include "format/weight.h"
#include "format/weight_layout.h"
#include "test_util.h"

using namespace mmfp4;

namespace {

std::vector<float> random_weight(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> v(size_t(n * k));
  for (float& x : v) x = d(rng);
  return v;
}

template <typename T>
std::vector<T> transpose(const std::vector<T>& a, int64_t rows, int64_t cols) {
  std::vector<T> t(a.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = a[size_t(r * cols + c)];
  return t;
}

struct Variant {
  bool words_transposed = false, scales_transposed = false;
  std::string scale_key = "P.scales";  // or "M.scales", "M.weight_scale"
  bool group_size_sibling = true;
  std::string qc_format;               // quantization_config.json "format" ("" = no file)
};

const std::string kName = "model.layers.0.mlp.up_proj.weight";

// Writes `q` into `dir` in the given variant.
void write_variant(const std::string& dir, const QuantizedMatrix& q, const Variant& v) {
  const int64_t n = q.n, wpr = q.k_stored / 8, gpr = q.k_stored / q.group_size;
  std::vector<uint32_t> words = v.words_transposed ? transpose(q.codes, n, wpr) : q.codes;
  std::vector<uint16_t> scales = v.scales_transposed ? transpose(q.scales, n, gpr) : q.scales;
  const std::string m = kName.substr(0, kName.size() - 7);
  const std::string skey = v.scale_key == "P.scales" ? kName + ".scales"
                           : v.scale_key == "M.scales" ? m + ".scales"
                                                       : m + ".weight_scale";
  int32_t G = q.group_size, b = q.hadamard_block;
  std::vector<SafetensorsWriter::Item> items = {
      {kName, DType::U32, v.words_transposed ? std::vector<int64_t>{wpr, n} : std::vector<int64_t>{n, wpr},
       words.data()},
      {skey, DType::F16, v.scales_transposed ? std::vector<int64_t>{gpr, n} : std::vector<int64_t>{n, gpr},
       scales.data()},
  };
  if (v.group_size_sibling) items.push_back({kName + ".group_size", DType::I32, {1}, &G});
  if (b) items.push_back({kName + ".hadamard_block_size", DType::I32, {1}, &b});
  SafetensorsWriter::write_file(dir + "/model.safetensors", items);
  if (!v.qc_format.empty())
    test::write_bytes(dir + "/quantization_config.json", "{\"format\": \"" + v.qc_format + "\", \"group_size\": " +
                                                             std::to_string(q.group_size) + "}");
}

HostWeight load(const std::string& dir, std::unique_ptr<Checkpoint>& ck, int64_t n, int64_t k) {
  ck = Checkpoint::open(dir);
  return load_weight(*ck, kName, n, k, QuantConfig::load(dir));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Shape {
  int64_t n, k;
  int G, b;
};

class Layouts : public ::testing::TestWithParam<Shape> {};

TEST_P(Layouts, EveryVariantLoadsTheSameCanonicalWeight) {
  const Shape s = GetParam();
  const auto w = random_weight(s.n, s.k, uint32_t(s.n * 7 + s.k));
  const QuantizedMatrix q = quantize_rtn(w.data(), DType::F32, s.n, s.k, {s.G, s.b}, "w");
  const std::vector<Variant> variants = {
      {},
      {true, true, "P.scales", true, "marlin_fp4"},  // metal-marlin's "quantize -m rtn" layout
      {false, true, "P.scales", true, ""},           // transposed scales next to canonical words
      {false, false, "M.scales", true, ""},
      {false, false, "M.weight_scale", true, ""},
      {false, false, "P.scales", false, "mmfp4_e2m1_marlin"},  // group size inferred from the scales
      {true, true, "M.scales", false, "marlin_fp4"},
  };
  const int64_t ks = q.k_stored;
  for (size_t i = 0; i < variants.size(); ++i) {
    SCOPED_TRACE("variant " + std::to_string(i));
    // Where the shapes cannot tell the orientation, only a "marlin_fp4" config says "transposed".
    const Variant& v = variants[i];
    const bool says_transposed = v.qc_format == "marlin_fp4";
    if ((s.n == ks / 8 && v.words_transposed != says_transposed) ||
        (s.n == ks / s.G && v.scales_transposed != says_transposed))
      continue;
    test::TempDir dir;
    write_variant(dir.path(), q, variants[i]);
    std::unique_ptr<Checkpoint> ck;
    const HostWeight hw = load(dir.path(), ck, s.n, s.k);
    EXPECT_EQ(hw.format, WeightFormat::MMFP4);
    EXPECT_EQ(hw.group_size, s.G);
    EXPECT_EQ(hw.hadamard_block, s.b);
    EXPECT_EQ(hw.k_stored, q.k_stored);
    EXPECT_EQ(hw.stored_bytes(), int64_t(q.codes.size() * 4 + q.scales.size() * 2));
    EXPECT_EQ(std::memcmp(hw.codes, q.codes.data(), q.codes.size() * 4), 0);
    EXPECT_EQ(std::memcmp(hw.scales, q.scales.data(), q.scales.size() * 2), 0);
    // Canonical data is a zero-copy view of the mapping; converted variants own their copy.
    const bool converted = variants[i].words_transposed || variants[i].scales_transposed;
    EXPECT_EQ(hw.storage != nullptr, converted);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Layouts,
                         ::testing::Values(Shape{24, 256, 128, 0},   // plain
                                           Shape{32, 256, 64, 0},    // n == k/8: words ambiguous
                                           Shape{4, 256, 64, 0},     // n == k/G: scales ambiguous
                                           Shape{16, 96, 32, 64},    // rotation with padding to 128
                                           Shape{40, 320, 32, 64}),  // rotated, k a multiple of the block
                         [](const ::testing::TestParamInfo<Shape>& i) {
                           return "n" + std::to_string(i.param.n) + "_k" + std::to_string(i.param.k) + "_g" +
                                  std::to_string(i.param.G) + "_b" + std::to_string(i.param.b);
                         });

TEST(Weight, AmbiguousOrientationFollowsQuantizationConfig) {
  // n == k/8 and n == k/G: the shapes cannot tell; "marlin_fp4" means transposed, anything else canonical.
  const int64_t n = 32, k = 256;
  const auto w = random_weight(n, k, 5);
  const QuantizedMatrix q = quantize_rtn(w.data(), DType::F32, n, k, {8, 0}, "w");
  for (bool transposed : {false, true}) {
    test::TempDir dir;
    write_variant(dir.path(), q, {transposed, transposed, "P.scales", true, transposed ? "marlin_fp4" : ""});
    std::unique_ptr<Checkpoint> ck;
    const HostWeight hw = load(dir.path(), ck, n, k);
    EXPECT_EQ(std::memcmp(hw.codes, q.codes.data(), q.codes.size() * 4), 0) << transposed;
    EXPECT_EQ(std::memcmp(hw.scales, q.scales.data(), q.scales.size() * 2), 0) << transposed;
  }
}

TEST(Weight, RefusesTheFinishQuantizationVariant) {
  // finish_quantization.py: levels 0..9 of a uniform grid (5 = zero) packed as nibbles, scales "M.scales", no
  // group-size sibling.
  const int64_t n = 16, k = 256;
  const auto w = random_weight(n, k, 9);
  QuantizedMatrix q;
  q.n = n, q.k = k, q.k_stored = k, q.group_size = 128;
  q.codes.assign(size_t(n * k / 8), 0);
  q.scales.assign(size_t(n * 2), f32_to_f16(0.01f));
  for (int64_t i = 0; i < n * k; ++i) {
    int level = std::clamp(int(std::lround(w[size_t(i)] / 0.15f * 4)) + 5, 0, 9);
    q.codes[size_t(i / 8)] |= uint32_t(level) << (4 * (i % 8));
  }
  test::TempDir dir;
  write_variant(dir.path(), q, {false, false, "M.scales", false, ""});
  std::unique_ptr<Checkpoint> ck;
  const std::string msg = error_of([&] { load(dir.path(), ck, n, k); });
  EXPECT_NE(msg.find("codes are not E2M1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("finish_quantization.py"), std::string::npos) << msg;
  EXPECT_NE(msg.find(kName), std::string::npos) << msg;
  // The same codes with a group-size sibling are trusted (the rule only applies to the broken variant's shape).
  test::TempDir dir2;
  write_variant(dir2.path(), q, {false, false, "M.scales", true, ""});
  EXPECT_NO_THROW(load(dir2.path(), ck, n, k));
}

TEST(Weight, E2M1HistogramRule) {
  int64_t h[16] = {};
  std::string why;
  for (int c = 0; c < 16; ++c) h[c] = c == 8 ? 0 : 100;
  EXPECT_TRUE(is_e2m1_histogram(h, &why));
  h[8] = 2;  // 2 in 1502: more than 1/1000
  EXPECT_FALSE(is_e2m1_histogram(h, &why));
  EXPECT_NE(why.find("negative zero"), std::string::npos);
  h[8] = 1;
  EXPECT_TRUE(is_e2m1_histogram(h, &why));
  h[8] = 0;
  for (int c = 10; c < 16; ++c) h[c] = 0;
  EXPECT_FALSE(is_e2m1_histogram(h, &why));
  EXPECT_NE(why.find("codes 10..15"), std::string::npos);
  int64_t small[16] = {};
  small[0] = 1000, small[1] = 63;  // fewer than 64 non-zero codes: too little evidence, accepted
  EXPECT_TRUE(is_e2m1_histogram(small, &why));
}

TEST(Weight, ShapeErrorsNameTensorFileExpectedAndFound) {
  const int64_t n = 24, k = 256;
  const auto w = random_weight(n, k, 11);
  const QuantizedMatrix q = quantize_rtn(w.data(), DType::F32, n, k, {128, 0}, "w");
  test::TempDir dir;
  write_variant(dir.path(), q, {});
  auto ck = Checkpoint::open(dir.path());
  const QuantConfig qc;
  std::string msg = error_of([&] { load_weight(*ck, kName, 24, 512, qc); });
  EXPECT_NE(msg.find("'" + kName + "' (U32 [24, 32]) in " + dir.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected MMFP4 codes [24, 64] for a [24, 512] weight"), std::string::npos) << msg;
  msg = error_of([&] { load_weight(*ck, kName, 48, 128, qc); });
  EXPECT_NE(msg.find("expected MMFP4 codes [48, 16]"), std::string::npos) << msg;
  msg = error_of([&] { load_weight(*ck, "model.layers.0.mlp.down_proj.weight", 256, 24, qc); });
  EXPECT_NE(msg.find("weight 'model.layers.0.mlp.down_proj.weight' is missing (expected [256, 24])"),
            std::string::npos)
      << msg;
  EXPECT_TRUE(has_weight(*ck, kName));
  EXPECT_FALSE(has_weight(*ck, "lm_head.weight"));
}

TEST(Weight, SiblingAndScaleErrors) {
  const int64_t n = 8, k = 128;
  std::vector<uint32_t> words(size_t(n * k / 8), 0x12345671u);
  std::vector<uint16_t> scales(size_t(n), f32_to_f16(1.0f));
  std::vector<float> f32_scales(size_t(n), 1.0f);
  int32_t bad_g = 48, bad_b = 48, g128 = 128;
  struct Case {
    std::vector<SafetensorsWriter::Item> items;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{{kName, DType::U32, {n, k / 8}, words.data()}}, "MMFP4 codes without scales"},
      {{{kName, DType::U32, {n, k / 8}, words.data()}, {kName + ".scales", DType::F32, {n, 1}, f32_scales.data()}},
       "MMFP4 scales must be F16, found F32"},
      {{{kName, DType::U32, {n, k / 8}, words.data()},
        {kName + ".scales", DType::F16, {n, 1}, scales.data()},
        {kName + ".group_size", DType::I32, {1}, &bad_g}},
       "group size 48 does not divide k_stored = 128"},
      {{{kName, DType::U32, {n, k / 8}, words.data()},
        {kName + ".scales", DType::F16, {n, 1}, scales.data()},
        {kName + ".hadamard_block_size", DType::I32, {1}, &bad_b}},
       "Hadamard block 48 is not a power of two"},
      {{{kName, DType::U32, {n, k / 8}, words.data()}, {kName + ".scales", DType::F16, {n / 2, 2}, scales.data()}},
       "fit no group size"},
      {{{kName, DType::U32, {n, k / 8}, words.data()},
        {kName + ".scales", DType::F16, {n / 2, 2}, scales.data()},
        {kName + ".group_size", DType::I32, {1}, &g128}},
       "expected MMFP4 scales [8, 1] (or [1, 8]) for group size 128"},
      {{{kName, DType::U32, {2, n / 2, k / 8}, words.data()}, {kName + ".scales", DType::F16, {n, 1}, scales.data()}},
       "3-D MMFP4 expert bank"},
      {{{kName, DType::I8, {n, k}, nullptr}}, "expected a dense F32/F16/BF16 weight or MMFP4 U32 codes, found dtype I8"},
      {{{kName, DType::F16, {k, n}, nullptr}}, "expected a dense weight of shape [8, 128], found [128, 8]"},
  };
  std::vector<uint8_t> zeros(size_t(n * k * 2), 0);
  for (const Case& c : cases) {
    test::TempDir dir;
    std::vector<SafetensorsWriter::Item> items = c.items;
    for (auto& it : items)
      if (!it.data) it.data = zeros.data();
    SafetensorsWriter::write_file(dir / "model.safetensors", items);
    auto ck = Checkpoint::open(dir.path());
    const std::string msg = error_of([&] { load_weight(*ck, kName, n, k, QuantConfig{}); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected: " << c.expect << "\ngot: " << msg;
  }
}

TEST(Weight, DenseWeightsAndVectors) {
  const int64_t n = 4, k = 8;
  const auto w = random_weight(n, k, 13);
  std::vector<uint16_t> f16(w.size()), bf16(w.size());
  for (size_t i = 0; i < w.size(); ++i) f16[i] = f32_to_f16(w[i]), bf16[i] = f32_to_bf16(w[i]);
  std::vector<float> norm = {1, 2, 3, 4};
  test::TempDir dir;
  SafetensorsWriter::write_file(dir / "model.safetensors", {{"a.weight", DType::F32, {n, k}, w.data()},
                                                            {"b.weight", DType::F16, {n, k}, f16.data()},
                                                            {"c.weight", DType::BF16, {n, k}, bf16.data()},
                                                            {"norm.weight", DType::F32, {n}, norm.data()},
                                                            {"nh.weight", DType::F16, {n}, f16.data()}});
  auto ck = Checkpoint::open(dir.path());
  const QuantConfig qc;
  EXPECT_EQ(load_weight(*ck, "a.weight", n, k, qc).dequantize(), w);
  const auto b = load_weight(*ck, "b.weight", n, k, qc);
  EXPECT_EQ(b.format, WeightFormat::Dense);
  EXPECT_EQ(b.dtype, DType::F16);
  EXPECT_EQ(b.stored_bytes(), n * k * 2);
  const auto bd = b.dequantize();
  const auto cd = load_weight(*ck, "c.weight", n, k, qc).dequantize();
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(bd[i], f16_to_f32(f16[i]));
    EXPECT_EQ(cd[i], bf16_to_f32(bf16[i]));
  }
  EXPECT_EQ(load_vector(*ck, "norm.weight", n), norm);
  EXPECT_EQ(load_vector(*ck, "nh.weight", n)[1], f16_to_f32(f16[1]));
  EXPECT_NE(error_of([&] { load_vector(*ck, "norm.weight", 5); }).find("expected shape [5], found [4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_vector(*ck, "missing.weight", 5); }).find("'missing.weight' is missing"),
            std::string::npos);
}

TEST(Weight, UnalignedTensorsAreCopied) {
  // A file we did not write may start a U32 tensor at an odd offset: the loader must not hand out unaligned
  // pointers (the reads would be undefined behaviour), so it copies.
  const int64_t n = 2, k = 16;
  const std::vector<float> w = random_weight(n, k, 17);
  const QuantizedMatrix q = quantize_rtn(w.data(), DType::F32, n, k, {16, 0}, "w");
  std::string header = "{\"" + kName + "\":{\"dtype\":\"U32\",\"shape\":[2,2],\"data_offsets\":[2,18]},\"" + kName +
                       ".scales\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[19,23]}}";
  while ((8 + header.size()) % 8) header += ' ';
  std::string bytes = test::safetensors_bytes(header, 0);
  std::string data(23, '\0');
  std::memcpy(&data[2], q.codes.data(), 16);
  std::memcpy(&data[19], q.scales.data(), 4);
  test::TempDir dir;
  test::write_bytes(dir / "model.safetensors", bytes + data);
  auto ck = Checkpoint::open(dir.path());
  const HostWeight hw = load_weight(*ck, kName, n, k, QuantConfig{});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(hw.codes) % 4, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(hw.scales) % 2, 0u);
  EXPECT_NE(hw.storage, nullptr);
  EXPECT_EQ(std::memcmp(hw.codes, q.codes.data(), 16), 0);
  EXPECT_EQ(std::memcmp(hw.scales, q.scales.data(), 4), 0);
}

TEST(Weight, QuantConfig) {
  const QuantConfig qc = QuantConfig::load(test::shared_dir() + "/fixtures/parity-mmfp4/glm4-moe-lite");
  EXPECT_TRUE(qc.present);
  EXPECT_EQ(qc.format, "mmfp4_e2m1_marlin");
  EXPECT_EQ(qc.group_size, 128);
  EXPECT_TRUE(qc.use_hadamard);
  EXPECT_EQ(qc.hadamard_block_size, 64);
  EXPECT_FALSE(QuantConfig::load(test::shared_dir() + "/models/tiny-qwen3").present);
  test::TempDir dir;
  test::write_bytes(dir / "quantization_config.json", "{\"group_size\": \"128\"}");
  EXPECT_NE(error_of([&] { QuantConfig::load(dir.path()); }).find("field 'group_size'"), std::string::npos);
  test::write_bytes(dir / "quantization_config.json", "[1]");
  EXPECT_NE(error_of([&] { QuantConfig::load(dir.path()); }).find("expected a JSON object"), std::string::npos);
}

}  // namespace
