// Normalized Walsh-Hadamard transform of each block of `block` columns (Sylvester order, as backend/cpu/fwht.h):
// the in-place op, and the zero-padding copy a rotated weight's linear layer runs first (docs/format.md section 4).
// One thread block per (row, column block); the butterflies run in shared memory in the same order as the CPU
// reference, so both give the same bits.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

// out[r, j*block .. ] = H (x[r, j*block ..] zero-padded past column k).
__global__ void fwht_kernel(const float* x, int64_t xs, int k, float* out, int64_t os, int block) {
  pdl_enter();
  MMFP4_DYN_SMEM(float, v);
  const int64_t r = blockIdx.x;
  const int c0 = blockIdx.y * block;
  for (int i = threadIdx.x; i < block; i += blockDim.x) v[i] = (c0 + i < k) ? x[r * xs + c0 + i] : 0.0f;
  __syncthreads();
  for (int len = 1; len < block; len <<= 1) {
    for (int p = threadIdx.x; p < block / 2; p += blockDim.x) {
      const int j = (p / len) * 2 * len + (p % len);
      const float a = v[j], b = v[j + len];
      v[j] = a + b;
      v[j + len] = a - b;
    }
    __syncthreads();
  }
  const float s = 1.0f / sqrtf(float(block));
  for (int i = threadIdx.x; i < block; i += blockDim.x) out[r * os + c0 + i] = v[i] * s;
}

void launch_fwht(const float* x, int64_t xs, int rows, int k, int k_pad, int block, float* out, int64_t os,
                 cudaStream_t s, const char* what) {
  if (block <= 0 || (block & (block - 1)) != 0 || k_pad % block != 0 || block > 8192)
    fail(what, ": Hadamard block ", block, " must be a power of two <= 8192 dividing the width ", k_pad);
  if (rows == 0 || k_pad == 0) return;
  const dim3 grid(unsigned(rows), unsigned(k_pad / block));
  const int threads = block >= 512 ? 256 : (block / 2 >= 32 ? block / 2 : 32);
  MMFP4_LAUNCH(grid, threads, size_t(block) * sizeof(float), s, fwht_kernel)(x, xs, k, out, os, block);
  MMFP4_CUDA_LAUNCHED(what, " [", rows, ", ", k, " -> ", k_pad, "] block ", block);
}

}  // namespace

void launch_hadamard(float* x, int64_t stride, int rows, int cols, int block, cudaStream_t s) {
  launch_fwht(x, stride, rows, cols, cols, block, x, stride, s, "hadamard");
}

void launch_rotate_pad(const float* x, int64_t x_stride, int m, int k, int k_pad, int had, float* out,
                       cudaStream_t s) {
  launch_fwht(x, x_stride, m, k, k_pad, had, out, k_pad, s, "rotate activations");
}

}  // namespace mmfp4::cuda
