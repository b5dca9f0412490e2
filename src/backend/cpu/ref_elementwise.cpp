// Reference elementwise ops (MMFP4_CPU_REF=1): plain loops, std::exp; what cpu_elementwise.cpp is tested against.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_util.h"
#include "core/error.h"

namespace mmfp4 {

void CpuBackend::rmsnorm_ref(Act x, const DeviceVector& w, float eps, Act out) {
  MMFP4_ASSERT(w.n == x.cols && out.cols == x.cols && out.rows == x.rows);
  pool_->parallel_for(x.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.row(r);
      float* o = out.row(r);
      const float ms = dot_f32(xr, xr, x.cols) / float(x.cols);
      const float inv = 1.0f / std::sqrt(ms + eps);
      for (int64_t c = 0; c < x.cols; ++c) o[c] = xr[c] * inv * w.data[c];
    }
  });
}

void CpuBackend::rope_ref(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& t,
                          const BatchMeta& b) {
  const int64_t half = t.dim / 2;
  pool_->parallel_for(x.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t pos = b.h_positions[r];
      MMFP4_ASSERT(pos >= 0 && pos < t.max_positions);  // the model checks positions against its context
      const float* cs = t.cos + int64_t(pos) * half;
      const float* sn = t.sin + int64_t(pos) * half;
      for (int64_t h = 0; h < heads; ++h) rope_scalar(x.row(r) + h * head_stride + off, cs, sn, 0, half, t.interleaved);
    }
  });
}

void CpuBackend::silu_mul_ref(Act gate, Act up, Act out) {
  pool_->parallel_for(gate.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gate.row(r);
      const float* u = up.row(r);
      float* o = out.row(r);
      for (int64_t c = 0; c < gate.cols; ++c) o[c] = g[c] / (1.0f + std::exp(-g[c])) * u[c];
    }
  });
}

}  // namespace mmfp4
