// Random weights and activations for the CPU kernel tests: MMFP4 (every code, scales across the f16 range with
// zeros and subnormals) and dense F32/F16/BF16, fresh for every seed, owning their storage.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_isa.h"
#include "core/half.h"
#include "format/weight.h"

namespace mmfp4::testing {

struct TestWeight {
  std::vector<uint32_t> codes;
  std::vector<uint16_t> scales;
  std::vector<uint16_t> d16;
  std::vector<float> d32;
  HostWeight hw;
};

inline TestWeight random_mmfp4(int64_t n, int64_t k_stored, int group, uint64_t seed, int hadamard = 0,
                               int64_t k_logical = 0) {
  std::mt19937_64 rng(seed);
  TestWeight t;
  t.codes.resize(size_t(n * k_stored / 8));
  t.scales.resize(size_t(n * k_stored / group));
  for (auto& c : t.codes) c = uint32_t(rng());
  std::uniform_real_distribution<float> lg(-12.f, -2.f);
  for (size_t i = 0; i < t.scales.size(); ++i) {
    const uint64_t r = rng() % 64;
    if (r == 0) t.scales[i] = 0;                                 // zero scale (codes still non-zero)
    else if (r == 1) t.scales[i] = uint16_t(1 + rng() % 1023);   // subnormal
    else t.scales[i] = f32_to_f16(std::exp2(lg(rng)));
  }
  t.hw.format = WeightFormat::MMFP4;
  t.hw.n = n;
  t.hw.k = k_logical > 0 ? k_logical : k_stored;
  t.hw.k_stored = k_stored;
  t.hw.group_size = group;
  t.hw.hadamard_block = hadamard;
  t.hw.codes = t.codes.data();
  t.hw.scales = t.scales.data();
  t.hw.name = "test.weight";
  return t;
}

inline TestWeight random_dense(int64_t n, int64_t k, DType dt, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  TestWeight t;
  t.hw.format = WeightFormat::Dense;
  t.hw.n = n;
  t.hw.k = k;
  t.hw.dtype = dt;
  t.hw.name = "test.dense";
  if (dt == DType::F32) {
    t.d32.resize(size_t(n * k));
    for (auto& v : t.d32) v = nd(rng);
    t.hw.data = t.d32.data();
  } else {
    t.d16.resize(size_t(n * k));
    for (auto& v : t.d16) v = dt == DType::F16 ? f32_to_f16(nd(rng)) : f32_to_bf16(nd(rng));
    t.hw.data = t.d16.data();
  }
  return t;
}

// Activations with a heavy tail, some exact zeros and negative zeros.
inline std::vector<float> random_x(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(size_t(rows * cols));
  for (auto& v : x) {
    const uint64_t r = rng() % 50;
    v = r == 0 ? 0.f : r == 1 ? -0.f : r == 2 ? nd(rng) * 30.f : nd(rng);
  }
  return x;
}

// The ISAs this CPU can run (the tests run each).
inline std::vector<CpuIsa> available_isas() {
  std::vector<CpuIsa> v{CpuIsa::Avx2};
  if (detect_cpu_features().has_avx512()) v.push_back(CpuIsa::Avx512);
  return v;
}

// Bitwise equality that treats all NaNs as unequal to everything (so a NaN never passes).
inline bool same_bits(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return false;
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

}  // namespace mmfp4::testing
