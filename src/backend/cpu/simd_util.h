// AVX2 building blocks of the fast elementwise, attention and MoE ops (memory- or latency-bound work, where the
// baseline ISA is as fast as AVX-512): exp, horizontal sums in a fixed order, the Walsh-Hadamard transform.
// Every function computes each output from its own inputs only, in an order fixed by the code, so an op's result
// for a row never depends on what else is in the batch.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "backend/backend.h"
#include "backend/cpu/fwht.h"

namespace mmfp4 {

// e^x for 8 floats, within 2 ulp of the correctly rounded result on [-87.33, 88.37] (Cephes' polynomial after
// x = n ln 2 + r, with ln 2 split in two so r is exact); inputs outside are clamped (e^-87.33 ~ 1.2e-38 stands
// for anything smaller, e^88.37 ~ 2.6e38 for anything larger). NaN propagates: min/max return their second
// operand when either is NaN.
inline __m256 exp256(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.33f), _mm256_min_ps(_mm256_set1_ps(88.37f), x));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n, n in [-126, 127] after the clamp: a normal float built from its exponent field.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float exp_scalar(float x) {
  alignas(32) float t[8];
  _mm256_store_ps(t, exp256(_mm256_set1_ps(x)));
  return t[0];
}

// RoPE on pairs [i0, half) of one head, scalar: (p[2i], p[2i+1]) when interleaved, else (p[i], p[i + half]),
// each rotated by (cs[i], sn[i]). The reference op's loop and the vector op's tail.
inline void rope_scalar(float* p, const float* cs, const float* sn, int64_t i0, int64_t half, bool interleaved) {
  const int64_t step = interleaved ? 2 : 1, other = interleaved ? 1 : half;
  for (int64_t i = i0; i < half; ++i) {
    float* x = p + i * step;
    const float a = x[0], c = x[other];
    x[0] = a * cs[i] - c * sn[i];
    x[other] = c * cs[i] + a * sn[i];
  }
}

// Sum of the 8 lanes, always in the same tree order.
inline float hsum256(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline float hmax256(__m256 v) {
  __m128 lo = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// In-place normalized Walsh-Hadamard transform of n = 2^k floats, bit-identical to fwht_inplace (same butterfly
// stages in the same order, len 1, 2, 4 inside a register, then across registers).
inline void fwht_vec(float* x, int64_t n) {
  if (n < 8) return fwht_inplace(x, n);
  for (int64_t i = 0; i < n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 s = _mm256_permute_ps(v, 0xB1);  // [1 0 3 2]
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xAA);
    s = _mm256_permute_ps(v, 0x4E);  // [2 3 0 1]
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xCC);
    s = _mm256_permute2f128_ps(v, v, 1);
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xF0);
    _mm256_storeu_ps(x + i, v);
  }
  for (int64_t len = 8; len < n; len <<= 1)
    for (int64_t i = 0; i < n; i += len << 1)
      for (int64_t j = i; j < i + len; j += 8) {
        const __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + len);
        _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
        _mm256_storeu_ps(x + j + len, _mm256_sub_ps(a, b));
      }
  const __m256 s = _mm256_set1_ps(1.0f / std::sqrt(float(n)));
  for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
}

// Every block of `block` columns of every row of x.
inline void hadamard_rows(Act x, int block) {
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t c = 0; c + block <= x.cols; c += block) fwht_vec(x.row(r) + c, block);
}

}  // namespace mmfp4
