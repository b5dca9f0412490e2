// Register-blocked attention kernels (AVX2; on Zen 4 and most Intel parts they reach the same FMA rate as AVX-512
// here, and one ISA for every machine keeps attention bit-identical across them).
//
// Scores: s[h][j] = scale * dot(q_h, key_j), where a query row is the concatenation of up to two segments (MLA:
// q_lat over the latent, then q_pe over the rope key; GQA: one segment) and the key row is contiguous. A block of
// 2 query rows x 4 keys keeps 8 accumulators, so each loaded key vector feeds 2 FMAs and each query vector 4.
// The per-pair arithmetic is fixed: one 8-lane accumulator over the segments in order (lane = index mod 8 within
// a segment), summed by hsum256, then the segment tails (index >= 8 * floor(len / 8)) in order; so a score is the
// same bits whatever block, batch or head grouping it was computed in.
//
// Weighted values: out[h][d] = sum over keys j in order of fma(p[h][j], value_j[d], .), blocked 2 rows x 32 values.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "backend/cpu/simd_util.h"

namespace mmfp4 {

struct QuerySegs {
  const float* a;  // first segment of query row h: a + h * a_stride, length la
  int64_t a_stride, la;
  const float* b;  // second segment (may be null): b + h * b_stride, length lb
  int64_t b_stride, lb;
};

// Keys: key j is the row at keys[j] (la + lb floats; the second segment at offset la).
template <int HB, int JB>
inline void score_block(const QuerySegs& q, int64_t h0, const float* const* keys, float scale, float* s, int64_t ldS) {
  __m256 acc[HB][JB];
  for (int h = 0; h < HB; ++h)
    for (int j = 0; j < JB; ++j) acc[h][j] = _mm256_setzero_ps();
  const int64_t la8 = q.la / 8 * 8, lb8 = q.lb / 8 * 8;
  for (int64_t k = 0; k < la8; k += 8) {
    __m256 qv[HB];
    for (int h = 0; h < HB; ++h) qv[h] = _mm256_loadu_ps(q.a + (h0 + h) * q.a_stride + k);
    for (int j = 0; j < JB; ++j) {
      const __m256 kv = _mm256_loadu_ps(keys[j] + k);
      for (int h = 0; h < HB; ++h) acc[h][j] = _mm256_fmadd_ps(qv[h], kv, acc[h][j]);
    }
  }
  for (int64_t k = 0; k < lb8; k += 8) {
    __m256 qv[HB];
    for (int h = 0; h < HB; ++h) qv[h] = _mm256_loadu_ps(q.b + (h0 + h) * q.b_stride + k);
    for (int j = 0; j < JB; ++j) {
      const __m256 kv = _mm256_loadu_ps(keys[j] + q.la + k);
      for (int h = 0; h < HB; ++h) acc[h][j] = _mm256_fmadd_ps(qv[h], kv, acc[h][j]);
    }
  }
  for (int h = 0; h < HB; ++h) {
    const float* qa = q.a + (h0 + h) * q.a_stride;
    const float* qb = q.b ? q.b + (h0 + h) * q.b_stride : nullptr;
    for (int j = 0; j < JB; ++j) {
      float sum = hsum256(acc[h][j]);
      for (int64_t k = la8; k < q.la; ++k) sum = std::fma(qa[k], keys[j][k], sum);
      for (int64_t k = lb8; k < q.lb; ++k) sum = std::fma(qb[k], keys[j][q.la + k], sum);
      s[(h0 + h) * ldS + j] = sum * scale;
    }
  }
}

// s[h][j] for query rows h in [0, nh) and n keys; keys[j] points at key j.
inline void attention_scores(const QuerySegs& q, int64_t nh, const float* const* keys, int64_t n, float scale,
                             float* s, int64_t ldS) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    int64_t h = 0;
    for (; h + 2 <= nh; h += 2) score_block<2, 4>(q, h, keys + j, scale, s + j, ldS);
    if (h < nh) score_block<1, 4>(q, h, keys + j, scale, s + j, ldS);
  }
  for (; j < n; ++j) {
    int64_t h = 0;
    for (; h + 2 <= nh; h += 2) score_block<2, 1>(q, h, keys + j, scale, s + j, ldS);
    if (h < nh) score_block<1, 1>(q, h, keys + j, scale, s + j, ldS);
  }
}

// out[h][0..d) = sum_j p[h][j] * values[j][0..d) (serial in j per element) for h in [0, nh).
inline void attention_values(const float* p, int64_t ldP, int64_t nh, const float* const* values, int64_t n,
                             int64_t d, float* out, int64_t ldO) {
  const int64_t d32 = d / 32 * 32, d8 = d / 8 * 8;
  for (int64_t h0 = 0; h0 < nh; h0 += 2) {
    const int hb = nh - h0 >= 2 ? 2 : 1;
    for (int64_t c = 0; c < d32; c += 32) {
      __m256 acc[2][4];
      for (int h = 0; h < 2; ++h)
        for (int v = 0; v < 4; ++v) acc[h][v] = _mm256_setzero_ps();
      for (int64_t j = 0; j < n; ++j) {
        const float* vr = values[j] + c;
        const __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8), v2 = _mm256_loadu_ps(vr + 16),
                     v3 = _mm256_loadu_ps(vr + 24);
        for (int h = 0; h < hb; ++h) {
          const __m256 pv = _mm256_set1_ps(p[(h0 + h) * ldP + j]);
          acc[h][0] = _mm256_fmadd_ps(pv, v0, acc[h][0]);
          acc[h][1] = _mm256_fmadd_ps(pv, v1, acc[h][1]);
          acc[h][2] = _mm256_fmadd_ps(pv, v2, acc[h][2]);
          acc[h][3] = _mm256_fmadd_ps(pv, v3, acc[h][3]);
        }
      }
      for (int h = 0; h < hb; ++h)
        for (int v = 0; v < 4; ++v) _mm256_storeu_ps(out + (h0 + h) * ldO + c + 8 * v, acc[h][v]);
    }
    for (int64_t c = d32; c < d8; c += 8) {
      __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t j = 0; j < n; ++j) {
        const __m256 v = _mm256_loadu_ps(values[j] + c);
        for (int h = 0; h < hb; ++h) acc[h] = _mm256_fmadd_ps(_mm256_set1_ps(p[(h0 + h) * ldP + j]), v, acc[h]);
      }
      for (int h = 0; h < hb; ++h) _mm256_storeu_ps(out + (h0 + h) * ldO + c, acc[h]);
    }
    for (int64_t c = d8; c < d; ++c)
      for (int h = 0; h < hb; ++h) {
        float a = 0;
        for (int64_t j = 0; j < n; ++j) a = std::fma(p[(h0 + h) * ldP + j], values[j][c], a);
        out[(h0 + h) * ldO + c] = a;
      }
  }
}

}  // namespace mmfp4
