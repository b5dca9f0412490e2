// The packed-path micro-kernel, written once over a vector type and included by gemm_avx2.cpp (V = 8 floats) and
// gemm_avx512.cpp (V = 16 floats, included there under its AVX-512 target pragma). V provides:
//   using T; static constexpr int kW;  zero(), load(p) (aligned), loadu(p), storeu(p, v), bcast(p), fma(a, b, c)
// Everything here has internal linkage, so each ISA file gets its own instantiations.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/gemm_kernels.h"
#include "core/error.h"

namespace mmfp4 {
namespace {

// C[MR x 2 kW] over one k-block. MMFP4: 2*MR group sums in registers fold into the accumulators once per group
// (AVX-512: 24 + 2 zmm live; AVX2: the compiler keeps the accumulators in L1). Dense: one serial sum per element.
// A 6 x 2kW tile does 12 FMAs per 2 loads of B and 6 broadcasts of x.
template <class V, int MR, bool GROUPED>
inline void tile_rows(const TileArgs& t) {
  constexpr int NR = 2 * V::kW;
  using T = typename V::T;
  T acc[MR][2];
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = t.first ? V::zero() : V::loadu(t.c + i * t.ldc);
    acc[i][1] = t.first ? V::zero() : V::loadu(t.c + i * t.ldc + V::kW);
  }
  const float* a = t.a;
  const float* b = t.b;
  if constexpr (GROUPED) {
    const int64_t groups = t.kc / t.group;
    for (int64_t g = 0; g < groups; ++g) {
      T ga[MR][2];
      for (int i = 0; i < MR; ++i) ga[i][0] = ga[i][1] = V::zero();
      for (int64_t k = 0; k < t.group; ++k, a += kMR, b += NR) {
        const T b0 = V::load(b), b1 = V::load(b + V::kW);
        for (int i = 0; i < MR; ++i) {
          const T ai = V::bcast(a + i);
          ga[i][0] = V::fma(ai, b0, ga[i][0]);
          ga[i][1] = V::fma(ai, b1, ga[i][1]);
        }
      }
      const T s0 = V::load(t.s + g * NR), s1 = V::load(t.s + g * NR + V::kW);
      for (int i = 0; i < MR; ++i) {
        acc[i][0] = V::fma(ga[i][0], s0, acc[i][0]);
        acc[i][1] = V::fma(ga[i][1], s1, acc[i][1]);
      }
    }
  } else {
    for (int64_t k = 0; k < t.kc; ++k, a += kMR, b += NR) {
      const T b0 = V::load(b), b1 = V::load(b + V::kW);
      for (int i = 0; i < MR; ++i) {
        const T ai = V::bcast(a + i);
        acc[i][0] = V::fma(ai, b0, acc[i][0]);
        acc[i][1] = V::fma(ai, b1, acc[i][1]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    V::storeu(t.c + i * t.ldc, acc[i][0]);
    V::storeu(t.c + i * t.ldc + V::kW, acc[i][1]);
  }
}

template <class V, bool GROUPED>
inline void tile_grouped(const TileArgs& t) {
  switch (t.mr) {
    case 1: return tile_rows<V, 1, GROUPED>(t);
    case 2: return tile_rows<V, 2, GROUPED>(t);
    case 3: return tile_rows<V, 3, GROUPED>(t);
    case 4: return tile_rows<V, 4, GROUPED>(t);
    case 5: return tile_rows<V, 5, GROUPED>(t);
    case 6: return tile_rows<V, 6, GROUPED>(t);
    default: MMFP4_ASSERT(false && "tile rows are 1..kMR");
  }
}

template <class V>
void tile_any(const TileArgs& t) {
  if (t.s) return tile_grouped<V, true>(t);
  tile_grouped<V, false>(t);
}

// out[s] = sum of the 8 lanes of r[s], for 8 vectors at once, in a fixed tree (MLA absorb's row reduction).
inline __m256 hsum8x8(const __m256 (&r)[8]) {
  const __m256 t0 = _mm256_hadd_ps(r[0], r[1]), t1 = _mm256_hadd_ps(r[2], r[3]);
  const __m256 t2 = _mm256_hadd_ps(r[4], r[5]), t3 = _mm256_hadd_ps(r[6], r[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// fused(FusedArgs) for m = 1..kFusedMaxM rows, given the ISA's fused_m<M>.
template <void (*F1)(const FusedArgs&), void (*F2)(const FusedArgs&), void (*F3)(const FusedArgs&),
          void (*F4)(const FusedArgs&)>
void fused_any(const FusedArgs& a) {
  switch (a.m) {
    case 1: return F1(a);
    case 2: return F2(a);
    case 3: return F3(a);
    case 4: return F4(a);
    default: MMFP4_ASSERT(false && "fused kernels take 1..kFusedMaxM rows");
  }
}

}  // namespace
}  // namespace mmfp4
