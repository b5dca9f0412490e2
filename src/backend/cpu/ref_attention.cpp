// Reference CPU attention (MMFP4_CPU_REF=1) over the paged KV cache: GQA (K and V per kv-head) and absorbed MLA (latent + rope key).
// One task per (token, head): scores over the token's visible positions, float32 softmax, weighted sum.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/paged_kv.h"
#include "core/error.h"

namespace mmfp4 {

namespace {

// In-place softmax of s[0..n); returns nothing, s becomes probabilities.
void softmax_inplace(float* s, int64_t n) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

}  // namespace

void CpuBackend::attention_ref(Act q, const KVLayerView& kv, int64_t heads, int64_t kv_heads, int64_t D, float scale,
                           const BatchMeta& b, Act out) {
  const int64_t group = heads / kv_heads;
  const int64_t T = q.rows;
  pool_->run(T * heads, [&](int64_t task, int th) {
    const int64_t t = task / heads, h = task % heads, kvh = h / group;
    const int32_t s = b.h_seq[t];
    const int64_t n = int64_t(b.h_positions[t]) + 1;
    float* sc = scratch(th, size_t(n + D));
    float* acc = sc + n;
    const float* qh = q.row(t) + h * D;
    for (int64_t j = 0; j < n; ++j) sc[j] = dot_f32(qh, cache_row(kv, b, s, j) + kvh * D, D) * scale;
    softmax_inplace(sc, n);
    std::memset(acc, 0, size_t(D) * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
      const float* vr = cache_row(kv, b, s, j) + kv_heads * D + kvh * D;
      const float p = sc[j];
      for (int64_t d = 0; d < D; ++d) acc[d] += p * vr[d];
    }
    std::memcpy(out.row(t) + h * D, acc, size_t(D) * sizeof(float));
  });
}

void CpuBackend::mla_attention_ref(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale,
                               const BatchMeta& b, Act out_lat) {
  const int64_t R = q_lat.cols, P = q_pe.cols;
  MMFP4_ASSERT(kv.width == R + P && out_lat.cols == R && q_lat.rows == q_pe.rows);
  pool_->run(q_lat.rows, [&](int64_t r, int th) {
    const int64_t t = r / heads;
    const int32_t s = b.h_seq[t];
    const int64_t n = int64_t(b.h_positions[t]) + 1;
    float* sc = scratch(th, size_t(n + R));
    float* acc = sc + n;
    const float* ql = q_lat.row(r);
    const float* qp = q_pe.row(r);
    for (int64_t j = 0; j < n; ++j) {
      const float* c = cache_row(kv, b, s, j);
      sc[j] = (dot_f32(ql, c, R) + dot_f32(qp, c + R, P)) * scale;
    }
    softmax_inplace(sc, n);
    std::memset(acc, 0, size_t(R) * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
      const float* c = cache_row(kv, b, s, j);
      const float p = sc[j];
      for (int64_t d = 0; d < R; ++d) acc[d] += p * c[d];
    }
    std::memcpy(out_lat.row(r), acc, size_t(R) * sizeof(float));
  });
}

}  // namespace mmfp4
