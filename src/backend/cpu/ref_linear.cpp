// Reference CPU linear layers (MMFP4_CPU_REF=1): y = x W^T with the weight dequantized one row at a time into a per-thread buffer
// (a whole dequantized matrix is never materialised), float32 accumulation in an order that depends only on K, so
// a row's result is the same whatever else is in the batch. Also the per-head absorbed-MLA products on kv_b_proj.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fwht.h"
#include "core/error.h"

namespace mmfp4 {

float dot_f32(const float* a, const float* b, int64_t n) {
  // Four independent 8-wide accumulators: a single accumulator chain is latency bound.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  __m256 s = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  __m128 lo = _mm256_castps256_ps128(s), hi = _mm256_extractf128_ps(s, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  float r = _mm_cvtss_f32(lo);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

void CpuBackend::linear_ref(Act x, const CpuLinear& w, Act out, bool accumulate, bool input_rotated) {
  MMFP4_ASSERT(out.rows == x.rows && out.cols == w.n);
  const int64_t T = x.rows, K = w.k_stored;
  Act xin = x;
  if (w.hadamard_block > 0 && !input_rotated) {
    // Rotate the activations (y = W' (H x)), zero-padding K to the stored width first.
    MMFP4_ASSERT(x.cols == w.k);
    float* rot = rotated_.get(size_t(T * K));
    for (int64_t t = 0; t < T; ++t) {
      float* r = rot + t * K;
      std::memcpy(r, x.row(t), size_t(w.k) * sizeof(float));
      std::memset(r + w.k, 0, size_t(K - w.k) * sizeof(float));
    }
    xin = Act(rot, T, K);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < K; c += w.hadamard_block) fwht_inplace(xin.row(t) + c, w.hadamard_block);
  } else {
    MMFP4_ASSERT(x.cols == K || (input_rotated && x.cols == K));
  }
  // Columns of the output in chunks of 16 weight rows per task.
  pool_->parallel_for(w.n, 16, [&](int64_t n0, int64_t n1, int th) {
    float* row = scratch(th, size_t(K));
    for (int64_t n = n0; n < n1; ++n) {
      w.stored_row(n, row);
      for (int64_t t = 0; t < T; ++t) {
        float v = dot_f32(xin.row(t), row, K);
        float* o = out.row(t) + n;
        *o = accumulate ? *o + v : v;
      }
    }
  });
}

void CpuBackend::mla_absorb_q_ref(Act q_nope, const CpuLinear& kv_b, int64_t heads, int64_t nope, int64_t v,
                                  Act q_lat) {
  const int64_t R = kv_b.k_stored, rows = q_nope.rows;
  MMFP4_ASSERT(q_lat.cols == R && q_nope.cols == nope && q_lat.rows == rows && rows % heads == 0);
  // q_lat[r] = sum_i q_nope[r, i] * W_UK_h[i, :] for the rows r of head h, accumulated in order of i.
  pool_->run(heads, [&](int64_t h, int th) {
    float* wrow = scratch(th, size_t(R));
    for (int64_t r = h; r < rows; r += heads) std::memset(q_lat.row(r), 0, size_t(R) * sizeof(float));
    for (int64_t i = 0; i < nope; ++i) {
      kv_b.stored_row(h * (nope + v) + i, wrow);
      for (int64_t r = h; r < rows; r += heads) {
        const float s = q_nope.row(r)[i];
        float* o = q_lat.row(r);
        for (int64_t j = 0; j < R; ++j) o[j] += s * wrow[j];
      }
    }
  });
}

void CpuBackend::mla_expand_v_ref(Act o_lat, const CpuLinear& kv_b, int64_t heads, int64_t nope, int64_t v,
                                  Act out) {
  const int64_t R = kv_b.k_stored, rows = o_lat.rows;
  MMFP4_ASSERT(o_lat.cols == R && out.cols == v && out.rows == rows && rows % heads == 0);
  pool_->run(heads, [&](int64_t h, int th) {
    float* wrow = scratch(th, size_t(R));
    for (int64_t j = 0; j < v; ++j) {
      kv_b.stored_row(h * (nope + v) + nope + j, wrow);
      for (int64_t r = h; r < rows; r += heads) out.row(r)[j] = dot_f32(o_lat.row(r), wrow, R);
    }
  });
}

}  // namespace mmfp4
