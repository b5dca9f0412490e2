// The MMFP4 codec, the Hadamard transform and the RTN quantizer against independent scalar references, on planted
// hard cases: exact ties, a tie that a float32 quotient would get wrong, outliers, zero and subnormal groups, group
// size 32, and k not a multiple of the rotation block (zero padding).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/half.h"
#include "format/hadamard.h"
#include "format/mmfp4.h"
#include "format/quantizer.h"
#include "format/weight.h"

using namespace mmfp4;

namespace {

// Independent RTN reference: the E2M1 magnitude at the smallest exact distance from |w| / s32 (distances compared
// as |a - v * s| in long double, exact for these magnitudes), ties to the smaller; no midpoints involved.
uint32_t reference_code(float w, float s32) {
  const long double a = std::fabs(static_cast<long double>(w)), s = s32;
  uint32_t best = 0;
  long double best_d = a;  // distance to 0
  for (uint32_t c = 1; c < 8; ++c) {
    long double d = std::fabs(a - static_cast<long double>(kE2M1[c]) * s);
    if (d < best_d) best = c, best_d = d;
  }
  return best | (w < 0 && best ? 8u : 0u);
}

float reference_s32(const float* g, int n) {
  float amax = 0;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(g[i]));
  volatile float s = amax / 6.0f;  // volatile: keep the two float32 roundings separate
  return s + 1e-10f;
}

QuantizedMatrix quantize_f32(const std::vector<float>& w, int64_t n, int64_t k, int G, int b = 0) {
  return quantize_rtn(w.data(), DType::F32, n, k, {G, b}, "test");
}

std::vector<float> random_normal(size_t n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Codec, TableHasTheE2M1ValuesAndSignBit) {
  const float mags[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(kE2M1[c], mags[c]);
    EXPECT_EQ(kE2M1[c + 8], -mags[c]);
    EXPECT_EQ(2 * kE2M1[c], std::round(2 * kE2M1[c]));  // 2x every value is an integer (exact int8 products)
  }
  EXPECT_TRUE(std::signbit(kE2M1[8]));
}

TEST(Codec, PackPutsEightCodesPerWordLowNibbleFirst) {
  std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 8, 15, 0, 9, 10, 11, 12, 13, 14};
  std::vector<uint32_t> words(2);
  mmfp4_pack(codes.data(), 16, words.data());
  EXPECT_EQ(words[0], 0x87654321u);
  EXPECT_EQ(words[1], 0xEDCBA90Fu);
  // Byte 4j holds codes 8j (low nibble) and 8j+1: little-endian words.
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words.data());
  EXPECT_EQ(bytes[0], 0x21);
  EXPECT_EQ(bytes[4], 0x0F);
  std::vector<uint8_t> back(16);
  mmfp4_unpack(words.data(), 16, back.data());
  EXPECT_EQ(back, codes);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(mmfp4_code(words.data(), i), codes[size_t(i)]);
}

TEST(Codec, DequantizeRowMultipliesByTheGroupScale) {
  std::vector<uint8_t> codes(16);
  for (int i = 0; i < 16; ++i) codes[size_t(i)] = uint8_t(i);
  std::vector<uint32_t> words(2);
  mmfp4_pack(codes.data(), 16, words.data());
  const uint16_t scales[2] = {f32_to_f16(0.5f), f32_to_f16(-2.0f)};
  std::vector<float> out(16);
  mmfp4_dequantize_row(words.data(), scales, 16, 8, out.data());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[size_t(i)], kE2M1[i] * (i < 8 ? 0.5f : -2.0f));
}

// ---- Hadamard -------------------------------------------------------------------------------------------------
TEST(Hadamard, FastTransformIsTheNormalizedSylvesterMatrix) {
  for (int b : {2, 4, 8, 32, 64, 128}) {
    std::vector<double> x(size_t(2 * b)), y(x.size());
    std::mt19937 rng(b);
    for (double& v : x) v = std::uniform_real_distribution<double>(-1, 1)(rng);
    for (int blk = 0; blk < 2; ++blk)
      for (int j = 0; j < b; ++j) {
        double s = 0;
        for (int i = 0; i < b; ++i) s += x[size_t(blk * b + i)] * ((__builtin_popcount(i & j) & 1) ? -1.0 : 1.0);
        y[size_t(blk * b + j)] = s / std::sqrt(double(b));
      }
    std::vector<double> f = x;
    hadamard_transform(f.data(), 2 * b, b);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(f[i], y[i], 1e-12) << "b=" << b;
    hadamard_transform(f.data(), 2 * b, b);  // orthonormal and symmetric: its own inverse
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(f[i], x[i], 1e-12) << "b=" << b;
  }
}

TEST(Hadamard, ExactRotationRoundsOnlyOnce) {
  // F16 values are integers times 2^-24 below 2^16, so the sums of a block fit an int64 exactly: the reference.
  const int b = 64;
  std::mt19937 rng(7);
  std::vector<float> x(4 * b), out(x.size());
  for (float& v : x) {
    // Mixed magnitudes (1e-7 .. 1e3) so that a float32 or even a naive sum would round.
    float m = std::pow(10.0f, std::uniform_real_distribution<float>(-7, 3)(rng));
    v = f16_to_f32(f32_to_f16(std::uniform_real_distribution<float>(-1, 1)(rng) * m));
  }
  hadamard_rotate_exact(x.data(), out.data(), int64_t(x.size()), b);
  int float32_differs = 0;
  std::vector<float> fast = x;
  hadamard_transform(fast.data(), int64_t(fast.size()), b);
  for (int blk = 0; blk < 4; ++blk)
    for (int j = 0; j < b; ++j) {
      int64_t s = 0;
      for (int i = 0; i < b; ++i) {
        int64_t units = int64_t(std::ldexp(double(x[size_t(blk * b + i)]), 24));
        s += (__builtin_popcount(i & j) & 1) ? -units : units;
      }
      const float want = float(std::ldexp(double(s), -24 - 3));  // / sqrt(64) = 2^-3; s < 2^53: exact double
      EXPECT_EQ(out[size_t(blk * b + j)], want);
      float32_differs += fast[size_t(blk * b + j)] != want;
    }
  EXPECT_GT(float32_differs, 0) << "the float32 butterflies were expected to round differently somewhere";
}

// ---- Quantizer hard cases --------------------------------------------------------------------------------------
TEST(Quantizer, ExactTiesGoToTheSmallerMagnitude) {
  // max 6 -> s32 = fl32(1 + 1e-10) = 1: every midpoint is then an exact tie.
  std::vector<float> w = {6.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f,
                          0.0f, -0.25f, -0.75f, -1.25f, -1.75f, -2.5f, -3.5f, -5.0f};
  auto q = quantize_f32(w, 1, 16, 16);
  std::vector<uint8_t> codes(16);
  mmfp4_unpack(q.codes.data(), 16, codes.data());
  const std::vector<uint8_t> want = {7, 0, 1, 2, 3, 4, 5, 6, 0, 0, 9, 10, 11, 12, 13, 14};
  EXPECT_EQ(codes, want);
  EXPECT_EQ(q.scales[0], f32_to_f16(1.0f));
  // Just above each tie goes up (the smallest subnormal above 0 still rounds to 0).
  for (float& v : w) v = v == 6.0f ? v : std::nextafter(v, v < 0 ? -10.0f : 10.0f);
  q = quantize_f32(w, 1, 16, 16);
  mmfp4_unpack(q.codes.data(), 16, codes.data());
  const std::vector<uint8_t> up = {7, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15};
  EXPECT_EQ(codes, up);
}

TEST(Quantizer, DecidesOnTheExactQuotientNotAFloat32One) {
  // amax = 6 + 2^-21 -> s32 = 1 + 2^-23. a = 0.75 + 2^-23 is above 0.75 * s32 = 0.75 + 1.5 * 2^-24, so the nearest
  // magnitude is 1.0 (code 2); but fl32(a / s32) = 0.75 exactly, a tie that would pick 0.5 (code 1).
  const float amax = 6.0f + std::ldexp(1.0f, -21), a = 0.75f + std::ldexp(1.0f, -23);
  std::vector<float> w(8, 0.0f);
  w[0] = amax;
  w[1] = a;
  const float s32 = reference_s32(w.data(), 8);
  ASSERT_EQ(s32, 1.0f + std::ldexp(1.0f, -23));
  ASSERT_EQ(a / s32, 0.75f);
  auto q = quantize_f32(w, 1, 8, 8);
  EXPECT_EQ(mmfp4_code(q.codes.data(), 1), 2u);
  EXPECT_EQ(reference_code(a, s32), 2u);
}

TEST(Quantizer, ZeroSubnormalAndOutlierGroups) {
  const int G = 32;
  std::vector<float> w(4 * G, 0.0f);  // one row, four groups
  // Group 0: all zero -> scale f16(1e-10) = 0, codes 0.
  // Group 1: tiny values -> s32 below F16's smallest subnormal: scale 0 although the codes are not.
  for (int i = 0; i < G; ++i) w[size_t(G + i)] = (i % 2 ? -1 : 1) * 1e-9f * float(i + 1);
  // Group 2: values whose scale is an F16 subnormal.
  for (int i = 0; i < G; ++i) w[size_t(2 * G + i)] = 1e-6f * float(i - 16);
  // Group 3: an outlier among small values.
  for (int i = 0; i < G; ++i) w[size_t(3 * G + i)] = 0.01f * float(i % 5 - 2);
  w[size_t(3 * G + 7)] = -100.0f;
  auto q = quantize_f32(w, 1, 4 * G, G);
  EXPECT_EQ(q.scales[0], 0u);
  for (int i = 0; i < G; ++i) EXPECT_EQ(mmfp4_code(q.codes.data(), i), 0u);
  EXPECT_EQ(q.scales[1], 0u);
  EXPECT_EQ(mmfp4_code(q.codes.data(), G + G - 1), 15u);  // the group's largest magnitude, negative
  const uint16_t s2 = q.scales[2];
  EXPECT_GT(s2, 0u);
  EXPECT_LT(s2, 0x0400u);  // subnormal F16
  EXPECT_EQ(mmfp4_code(q.codes.data(), 3 * G + 7), 15u);
  for (int i = 0; i < 4 * G; ++i) {
    const float s32 = reference_s32(&w[size_t(i / G * G)], G);
    EXPECT_EQ(mmfp4_code(q.codes.data(), i), reference_code(w[size_t(i)], s32)) << "k=" << i;
    EXPECT_NE(mmfp4_code(q.codes.data(), i), 8u);  // never negative zero
  }
  // Dequantizing a zero scale gives zeros, as in metal-marlin.
  HostWeight hw;
  hw.format = WeightFormat::MMFP4;
  hw.n = 1, hw.k = hw.k_stored = 4 * G, hw.group_size = G;
  hw.codes = q.codes.data();
  hw.scales = q.scales.data();
  auto d = hw.dequantize();
  for (int i = 0; i < 2 * G; ++i) EXPECT_EQ(d[size_t(i)], 0.0f);
  EXPECT_EQ(d[size_t(3 * G + 7)], -6.0f * f16_to_f32(q.scales[3]));
}

TEST(Quantizer, MatchesTheReferenceOnRandomDataForEverySourceType) {
  const int64_t n = 16, k = 256;
  for (int G : {32, 64, 128}) {
    auto w = random_normal(size_t(n * k), 0.05f, uint32_t(G));
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
      std::vector<uint16_t> half(w.size());
      std::vector<float> as_quantized(w.size());  // what the quantizer sees: BF16 then F16, or F16, or F32
      for (size_t i = 0; i < w.size(); ++i) {
        if (dt == DType::F16) half[i] = f32_to_f16(w[i]), as_quantized[i] = f16_to_f32(half[i]);
        if (dt == DType::BF16)
          half[i] = f32_to_bf16(w[i]), as_quantized[i] = f16_to_f32(f32_to_f16(bf16_to_f32(half[i])));
        if (dt == DType::F32) as_quantized[i] = w[i];
      }
      const void* src = dt == DType::F32 ? static_cast<const void*>(w.data()) : half.data();
      auto q = quantize_rtn(src, dt, n, k, {G, 0}, "random");
      for (int64_t r = 0; r < n; ++r)
        for (int64_t g = 0; g < k / G; ++g) {
          const float* grp = &as_quantized[size_t(r * k + g * G)];
          const float s32 = reference_s32(grp, G);
          ASSERT_EQ(q.scales[size_t(r * (k / G) + g)], f32_to_f16(s32));
          for (int i = 0; i < G; ++i)
            ASSERT_EQ(mmfp4_code(q.codes.data() + r * (k / 8), g * G + i), reference_code(grp[i], s32))
                << "G=" << G << " dtype=" << dtype_name(dt);
        }
    }
  }
}

TEST(Quantizer, RotationPadsKToTheBlock) {
  // k = 96 is not a multiple of the block 64: stored width 128, padded with zeros before the rotation.
  const int64_t n = 8, k = 96;
  const int G = 32, b = 64;
  auto w = random_normal(size_t(n * k), 0.05f, 3);
  auto q = quantize_f32(w, n, k, G, b);
  ASSERT_EQ(q.k_stored, 128);
  ASSERT_EQ(q.codes.size(), size_t(n * 128 / 8));
  ASSERT_EQ(q.scales.size(), size_t(n * 128 / G));
  for (int64_t r = 0; r < n; ++r) {
    std::vector<float> padded(128, 0.0f), rot(128);
    std::copy(&w[size_t(r * k)], &w[size_t(r * k + k)], padded.begin());
    hadamard_rotate_exact(padded.data(), rot.data(), 128, b);
    for (int g = 0; g < 4; ++g) {
      const float s32 = reference_s32(&rot[size_t(g * G)], G);
      EXPECT_EQ(q.scales[size_t(r * 4 + g)], f32_to_f16(s32));
      for (int i = 0; i < G; ++i)
        EXPECT_EQ(mmfp4_code(q.codes.data() + r * 16, g * G + i), reference_code(rot[size_t(g * G + i)], s32));
    }
  }
  // The dequantizing reader undoes the rotation and drops the padding: close to W (FP4 error).
  HostWeight hw;
  hw.format = WeightFormat::MMFP4;
  hw.n = n, hw.k = k, hw.k_stored = q.k_stored, hw.group_size = G, hw.hadamard_block = b;
  hw.codes = q.codes.data();
  hw.scales = q.scales.data();
  auto d = hw.dequantize();
  ASSERT_EQ(d.size(), w.size());
  double err = 0, ref = 0;
  for (size_t i = 0; i < w.size(); ++i) err += (d[i] - w[i]) * (d[i] - w[i]), ref += w[i] * w[i];
  EXPECT_LT(std::sqrt(err / ref), 0.2);
  // Un-rotating by hand agrees: W = W' H on the padded row, then the first k columns.
  std::vector<float> stored(128);
  mmfp4_dequantize_row(q.codes.data(), q.scales.data(), 128, G, stored.data());
  std::vector<double> x(stored.begin(), stored.end());
  hadamard_transform(x.data(), 128, b);
  for (int i = 0; i < k; ++i) EXPECT_EQ(d[size_t(i)], float(x[size_t(i)]));
}

TEST(Quantizer, RejectsUnsupportedShapesAndValues) {
  EXPECT_NE(quantize_unsupported_reason(100, {128, 0}).find("not a multiple of 8"), std::string::npos);
  EXPECT_NE(quantize_unsupported_reason(192, {128, 0}).find("group size 128"), std::string::npos);
  EXPECT_NE(quantize_unsupported_reason(256, {12, 0}).find("multiple of 8"), std::string::npos);
  EXPECT_NE(quantize_unsupported_reason(256, {128, 48}).find("power of two"), std::string::npos);
  EXPECT_NE(quantize_unsupported_reason(96, {96, 64}).find("padded"), std::string::npos);
  EXPECT_EQ(quantize_unsupported_reason(96, {32, 64}), "");
  std::vector<float> w(16, 1.0f);
  w[5] = std::nanf("");
  try {
    quantize_f32(w, 1, 16, 16);
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite value nan at [0, 5]"), std::string::npos) << e.what();
  }
  std::vector<uint16_t> big(16, f32_to_bf16(1e6f));
  EXPECT_THROW(quantize_rtn(big.data(), DType::BF16, 1, 16, {16, 0}, "big"), std::exception);
}

}  // namespace
