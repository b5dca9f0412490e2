// Fast CPU attention over the paged KV cache: GQA (K and V per kv-head) and absorbed MLA (latent + rope key).
// A task takes one token and a group of heads that read the same cache rows (a kv-head's query heads; for MLA,
// whose latent every head shares, a slice of the heads), so each cache row is loaded once for the whole group.
// Per (token, head) the arithmetic is fixed: dot products in dot_f32's order, a softmax whose sum runs over
// 8-lane partials then a fixed tree, and the weighted sum of values in position order; the grouping and the
// batch never change a result. Scores live in per-thread scratch sized at load (reserve_workspace).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_util.h"
#include "core/error.h"

namespace mmfp4 {

namespace {

// The cache row of position `pos` of sequence `s`.
inline const float* cache_row(const KVLayerView& kv, const BatchMeta& b, int32_t s, int64_t pos) {
  const int32_t block = b.h_block_tables[int64_t(s) * b.max_blocks + pos / kv.block_size];
  MMFP4_ASSERT(block >= 0);  // the scheduler allocates blocks before a batch runs
  return static_cast<const float*>(kv.data) + (int64_t(block) * kv.block_size + pos % kv.block_size) * kv.width;
}

inline float* slot_row(const KVLayerView& kv, int32_t slot) {
  return static_cast<float*>(kv.data) + int64_t(slot) * kv.width;
}

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

// acc[0..d) += p * v[0..d)
inline void axpy(float* acc, float p, const float* v, int64_t d) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(acc + i)));
  for (; i < d; ++i) acc[i] = std::fma(p, v[i], acc[i]);
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
    float* sc = scratch(th, size_t(group * (n + D)));  // scores [group][n], then outputs [group][D]
    float* acc = sc + group * n;
    const float* qg = q.row(t) + g * group * D;
    for (int64_t j = 0; j < n; ++j) {
      const float* kr = cache_row(kv, b, s, j) + g * D;
      for (int64_t h = 0; h < group; ++h) sc[h * n + j] = dot_f32(qg + h * D, kr, D) * scale;
    }
    for (int64_t h = 0; h < group; ++h) softmax_vec(sc + h * n, n);
    std::memset(acc, 0, size_t(group * D) * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
      const float* vr = cache_row(kv, b, s, j) + kv_heads * D + g * D;
      for (int64_t h = 0; h < group; ++h) axpy(acc + h * D, sc[h * n + j], vr, D);
    }
    std::memcpy(out.row(t) + g * group * D, acc, size_t(group * D) * sizeof(float));
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
    const int64_t t = task / groups, h0 = task % groups * per, h1 = std::min(heads, h0 + per), nh = h1 - h0;
    const int32_t s = b.h_seq[t];
    const int64_t n = int64_t(b.h_positions[t]) + 1;
    float* sc = scratch(th, size_t(nh * (n + R)));  // scores [nh][n], then latent outputs [nh][R]
    float* acc = sc + nh * n;
    for (int64_t j = 0; j < n; ++j) {
      const float* c = cache_row(kv, b, s, j);
      for (int64_t h = 0; h < nh; ++h) {
        const int64_t r = t * heads + h0 + h;
        sc[h * n + j] = (dot_f32(q_lat.row(r), c, R) + dot_f32(q_pe.row(r), c + R, P)) * scale;
      }
    }
    for (int64_t h = 0; h < nh; ++h) softmax_vec(sc + h * n, n);
    std::memset(acc, 0, size_t(nh * R) * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
      const float* c = cache_row(kv, b, s, j);
      for (int64_t h = 0; h < nh; ++h) axpy(acc + h * R, sc[h * n + j], c, R);
    }
    for (int64_t h = 0; h < nh; ++h)
      std::memcpy(out_lat.row(t * heads + h0 + h), acc + h * R, size_t(R) * sizeof(float));
  });
}

}  // namespace mmfp4
