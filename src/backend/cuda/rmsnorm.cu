// RMSNorm: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, float32, one block per row (out may alias x). Optionally
// also a 16-bit copy of out[r] for the cuBLAS product that reads it next (cuda_backend_blas.cpp): the same float32
// values rounded as launch_to_16bit rounds them (bf16, or saturated f16), zero-padded to cols_pad columns.
// Thread t sums columns t, t + B, t + 2B, .. in that order, then block_sum: mla_prepare.cuh repeats this arithmetic.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

__device__ __forceinline__ uint16_t to_16bit(float v, bool f16) {
  return uint16_t((f16 ? pack_f16x2_sat(v, 0.0f) : pack_bf16x2(v, 0.0f)) & 0xFFFF);
}

// V > 0: a thread's (at most V) columns are loaded at once and kept in registers, one pass over memory; V = 0: any
// width, x read twice (the second time each thread reads its own columns again, then overwrites them). Same sums.
template <int V>
__global__ void rmsnorm_kernel(const float* x, int64_t xs, float* out, int64_t os, int cols, const float* w, float eps,
                               uint16_t* ob, int64_t ld, int cols_pad, bool f16) {
  pdl_enter();
  __shared__ float red[32];
  const int B = blockDim.x;
  const float* xr = x + int64_t(blockIdx.x) * xs;
  float* o = out + int64_t(blockIdx.x) * os;
  uint16_t* obr = ob ? ob + int64_t(blockIdx.x) * ld : nullptr;
  float v[V > 0 ? V : 1];
  float ss = 0.0f;
  if constexpr (V > 0) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int c = threadIdx.x + i * B;
      v[i] = c < cols ? xr[c] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < V; ++i) ss = fmaf(v[i], v[i], ss);  // past the row: + 0, the same sum
  } else {
    for (int c = threadIdx.x; c < cols; c += B) ss = fmaf(xr[c], xr[c], ss);
  }
  const float ms = block_sum(ss, red) / float(cols);
  const float inv = 1.0f / sqrtf(ms + eps);
  if constexpr (V > 0) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int c = threadIdx.x + i * B;
      if (c >= cols) break;
      const float r = v[i] * inv * w[c];
      o[c] = r;
      if (obr) obr[c] = to_16bit(r, f16);
    }
  } else {
    for (int c = threadIdx.x; c < cols; c += B) {
      const float r = xr[c] * inv * w[c];
      o[c] = r;
      if (obr) obr[c] = to_16bit(r, f16);
    }
  }
  if (obr)
    for (int c = cols + threadIdx.x; c < cols_pad; c += B) obr[c] = 0;
}

void launch(const float* x, int64_t xs, float* out, int64_t os, int rows, int cols, const float* w, float eps,
            uint16_t* ob, int64_t ld, int cols_pad, bool f16, cudaStream_t s) {
  const int threads = cols >= 1024 ? 256 : cols >= 256 ? 128 : 64;
  const int per = (cols + threads - 1) / threads;  // columns per thread
  if (per <= 4)
    MMFP4_LAUNCH(rows, threads, 0, s, rmsnorm_kernel<4>)(x, xs, out, os, cols, w, eps, ob, ld, cols_pad, f16);
  else if (per <= 8)
    MMFP4_LAUNCH(rows, threads, 0, s, rmsnorm_kernel<8>)(x, xs, out, os, cols, w, eps, ob, ld, cols_pad, f16);
  else if (per <= 16)
    MMFP4_LAUNCH(rows, threads, 0, s, rmsnorm_kernel<16>)(x, xs, out, os, cols, w, eps, ob, ld, cols_pad, f16);
  else
    MMFP4_LAUNCH(rows, threads, 0, s, rmsnorm_kernel<0>)(x, xs, out, os, cols, w, eps, ob, ld, cols_pad, f16);
}

}  // namespace

void launch_rmsnorm(const float* x, int64_t xs, float* out, int64_t os, int rows, int cols, const float* w,
                    float eps, cudaStream_t s) {
  if (rows == 0) return;
  launch(x, xs, out, os, rows, cols, w, eps, nullptr, 0, 0, false, s);
  MMFP4_CUDA_LAUNCHED("rmsnorm [", rows, ", ", cols, "]");
}

void launch_rmsnorm_16bit(const float* x, int64_t xs, float* out, int64_t os, int rows, int cols, const float* w,
                          float eps, uint16_t* ob, int64_t ld, int cols_pad, bool f16, cudaStream_t s) {
  if (cols_pad < cols || ld < cols_pad)
    fail("rmsnorm_16bit: padded width ", cols_pad, " and row stride ", ld, " must be >= ", cols, " columns");
  if (rows == 0) return;
  launch(x, xs, out, os, rows, cols, w, eps, ob, ld, cols_pad, f16, s);
  MMFP4_CUDA_LAUNCHED("rmsnorm_16bit [", rows, ", ", cols, "] -> ld ", ld);
}

}  // namespace mmfp4::cuda
