// Rotary position embedding on columns [off, off + dim) of each head, position read from device memory (so a
// captured graph replays with the new positions). Interleaved pairs (2i, 2i+1) for MLA models, rotate-half pairs
// (i, i + dim/2) otherwise; cos/sin come from the model's precomputed table [positions, dim/2].
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

__global__ void rope_kernel(float* x, int64_t stride, int rows, int heads, int64_t head_stride, int off,
                            const float* cos_t, const float* sin_t, int half, bool interleaved,
                            const int32_t* positions, int max_positions) {
  pdl_enter();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t per_row = int64_t(heads) * half;
  if (idx >= per_row * rows) return;
  const int r = int(idx / per_row), h = int((idx % per_row) / half), i = int(idx % half);
  const int pos = positions[r];
  if (pos < 0 || pos >= max_positions) return;  // validated by the model; never read past the table
  const float cs = cos_t[int64_t(pos) * half + i], sn = sin_t[int64_t(pos) * half + i];
  float* p = x + int64_t(r) * stride + h * head_stride + off;
  const int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
  const float a = p[ia], c = p[ib];
  p[ia] = a * cs - c * sn;
  p[ib] = c * cs + a * sn;
}

}  // namespace

void launch_rope(float* x, int64_t stride, int rows, int heads, int64_t head_stride, int off, const float* cos,
                 const float* sin, int dim, bool interleaved, const int32_t* positions, int max_positions,
                 cudaStream_t s) {
  const int half = dim / 2;
  const int64_t n = int64_t(rows) * heads * half;
  if (n == 0) return;
  MMFP4_LAUNCH(unsigned((n + 255) / 256), 256, 0, s, rope_kernel)(x, stride, rows, heads, head_stride, off, cos, sin, half,
                                                         interleaved, positions, max_positions);
  MMFP4_CUDA_LAUNCHED("rope [", rows, " rows x ", heads, " heads], dim ", dim, interleaved ? " interleaved" : "");
}

}  // namespace mmfp4::cuda
