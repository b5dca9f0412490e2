// Fast CPU attention over the paged KV cache: GQA (K and V per kv-head) and absorbed MLA (latent + rope key).
// A task takes one token and a group of heads that read the same cache rows (a kv-head's query heads; for MLA,
// whose latent every head shares, a slice of the heads); scores and weighted values run as register-blocked
// kernels over (heads x positions) (attention_kernels.h). Per (token, head) the arithmetic is fixed (see there,
// and a softmax whose sum runs over 8-lane partials then a fixed tree), so the grouping and the batch never change
// a result. Scores and row pointers live in per-thread scratch sized at load (reserve_workspace).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/attention_kernels.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/paged_kv.h"
#include "backend/cpu/simd_util.h"
#include "core/error.h"

namespace mmfp4 {

namespace {


// In-place softmax of s[0..n).
void softmax_vec(float* s, int64_t n) {
  const int64_t n8 = n / 8 * 8;
  __m256 mv = _mm256_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n8; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + j));
  float mx = hmax256(mv);
  for (int64_t j = n8; j < n; ++j) mx = std::max(mx, s[j]);
  const __m256 m = _mm256_set1_ps(mx);
  __m256 sv = _mm256_setzero_ps();
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, e);
    sv = _mm256_add_ps(sv, e);
  }
  float sum = hsum256(sv);
  for (int64_t j = n8; j < n; ++j) sum += (s[j] = exp_scalar(s[j] - mx));
  const float inv = 1.0f / sum;
  const __m256 iv = _mm256_set1_ps(inv);
  for (int64_t j = 0; j < n8; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), iv));
  for (int64_t j = n8; j < n; ++j) s[j] *= inv;
}

}  // namespace

void CpuBackend::kv_store(const KVLayerView& kv, Act k, Act v, const BatchMeta& b) {
  MMFP4_ASSERT(kv.dtype == DType::F32 && kv.width == k.cols + v.cols);
  for (int64_t t = 0; t < b.n_tokens; ++t) {
    float* dst = slot_row(kv, b.h_slots[t]);
    std::memcpy(dst, k.row(t), size_t(k.cols) * sizeof(float));
    std::memcpy(dst + k.cols, v.row(t), size_t(v.cols) * sizeof(float));
  }
}

void CpuBackend::mla_store(const KVLayerView& kv, Act latent, Act kpe, const BatchMeta& b) {
  MMFP4_ASSERT(kv.dtype == DType::F32 && kv.width == latent.cols + kpe.cols);
  for (int64_t t = 0; t < b.n_tokens; ++t) {
    float* dst = slot_row(kv, b.h_slots[t]);
    std::memcpy(dst, latent.row(t), size_t(latent.cols) * sizeof(float));
    std::memcpy(dst + latent.cols, kpe.row(t), size_t(kpe.cols) * sizeof(float));
  }
}

void CpuBackend::attention(Act q, const KVLayerView& kv, int64_t heads, int64_t kv_heads, int64_t D, float scale,
                           const BatchMeta& b, Act out) {
  if (ref_) return attention_ref(q, kv, heads, kv_heads, D, scale, b, out);
  const int64_t group = heads / kv_heads, T = q.rows;
  pool_->run(T * kv_heads, [&](int64_t task, int th) {
    const int64_t t = task / kv_heads, g = task % kv_heads;
    const int32_t s = b.h_seq[t];
    const int64_t n = int64_t(b.h_positions[t]) + 1;
    // scratch: scores [group][n], key and value row pointers [n] each
    float* sc = scratch(th, size_t(group * n + 4 * n + 16));
    auto** keys = reinterpret_cast<const float**>(sc + group * n + (group * n) % 2);
    const float** vals = keys + n;
    for (int64_t j = 0; j < n; ++j) {
      const float* row = cache_row(kv, b, s, j);
      keys[j] = row + g * D;
      vals[j] = row + kv_heads * D + g * D;
    }
    const QuerySegs qs{q.row(t) + g * group * D, D, D, nullptr, 0, 0};
    attention_scores(qs, group, keys, n, scale, sc, n);
    for (int64_t h = 0; h < group; ++h) softmax_vec(sc + h * n, n);
    attention_values(sc, n, group, vals, n, D, out.row(t) + g * group * D, D);
  });
}

void CpuBackend::mla_attention(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale,
                               const BatchMeta& b, Act out_lat) {
  if (ref_) return mla_attention_ref(q_lat, q_pe, kv, heads, scale, b, out_lat);
  const int64_t R = q_lat.cols, P = q_pe.cols, T = q_lat.rows / heads;
  MMFP4_ASSERT(kv.width == R + P && out_lat.cols == R && q_lat.rows == q_pe.rows && q_lat.rows % heads == 0);
  // Heads per task: enough tasks for every thread, as few as possible (each task reads the sequence's cache once).
  const int64_t want = std::max<int64_t>(1, int64_t(pool_->size()) * 2 / std::max<int64_t>(1, T));
  const int64_t per = (heads + std::min(want, heads) - 1) / std::min(want, heads);
  const int64_t groups = (heads + per - 1) / per;
  pool_->run(T * groups, [&](int64_t task, int th) {
    const int64_t t = task / groups, h0 = task % groups * per, nh = std::min(heads, h0 + per) - h0;
    const int32_t s = b.h_seq[t];
    const int64_t n = int64_t(b.h_positions[t]) + 1;
    float* sc = scratch(th, size_t(nh * n + 2 * n + 16));  // scores [nh][n], then cache row pointers [n]
    auto** rows = reinterpret_cast<const float**>(sc + nh * n + (nh * n) % 2);
    for (int64_t j = 0; j < n; ++j) rows[j] = cache_row(kv, b, s, j);
    const int64_t r0 = t * heads + h0;
    const QuerySegs qs{q_lat.row(r0), q_lat.stride, R, q_pe.row(r0), q_pe.stride, P};
    attention_scores(qs, nh, rows, n, scale, sc, n);
    for (int64_t h = 0; h < nh; ++h) softmax_vec(sc + h * n, n);
    attention_values(sc, n, nh, rows, n, R, out_lat.row(r0), out_lat.stride);
  });
}

}  // namespace mmfp4
