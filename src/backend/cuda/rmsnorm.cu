// RMSNorm: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, float32, one block per row (out may alias x: each thread
// reads its own columns again after the block-wide sum, then overwrites them).
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

__global__ void rmsnorm_kernel(const float* x, int64_t xs, float* out, int64_t os, int cols, const float* w,
                               float eps) {
  pdl_enter();
  __shared__ float red[32];
  const float* xr = x + int64_t(blockIdx.x) * xs;
  float* o = out + int64_t(blockIdx.x) * os;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) ss = fmaf(xr[c], xr[c], ss);
  const float ms = block_sum(ss, red) / float(cols);
  const float inv = 1.0f / sqrtf(ms + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) o[c] = xr[c] * inv * w[c];
}

}  // namespace

void launch_rmsnorm(const float* x, int64_t xs, float* out, int64_t os, int rows, int cols, const float* w,
                    float eps, cudaStream_t s) {
  if (rows == 0) return;
  const int threads = cols >= 1024 ? 256 : cols >= 256 ? 128 : 64;
  MMFP4_LAUNCH(rows, threads, 0, s, rmsnorm_kernel)(x, xs, out, os, cols, w, eps);
  MMFP4_CUDA_LAUNCHED("rmsnorm [", rows, ", ", cols, "]");
}

}  // namespace mmfp4::cuda
