// Element-wise ops on strided [rows, cols] float32 views: silu(gate) * up, x += y, x += bias, row gather.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

__global__ void silu_mul_kernel(const float* g, int64_t gs, const float* u, int64_t us, float* o, int64_t os,
                                int rows, int cols) {
  pdl_enter();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(rows) * cols) return;
  const int64_t r = i / cols, c = i % cols;
  o[r * os + c] = silu_mul_value(g[r * gs + c], u[r * us + c]);
}

__global__ void add_kernel(float* x, int64_t xs, const float* y, int64_t ys, int rows, int cols) {
  pdl_enter();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(rows) * cols) return;
  const int64_t r = i / cols, c = i % cols;
  x[r * xs + c] += y[r * ys + c];
}

__global__ void add_bias_kernel(float* x, int64_t xs, int rows, int cols, const float* b) {
  pdl_enter();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(rows) * cols) return;
  const int64_t r = i / cols, c = i % cols;
  x[r * xs + c] += b[c];
}

__global__ void gather_kernel(const float* x, int64_t xs, const int32_t* rows, int n, int cols, float* out,
                              int64_t os) {
  pdl_enter();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(n) * cols) return;
  const int64_t r = i / cols, c = i % cols;
  out[r * os + c] = x[int64_t(rows[r]) * xs + c];
}

}  // namespace

void launch_silu_mul(const float* g, int64_t gs, const float* u, int64_t us, float* o, int64_t os, int rows, int cols,
                     cudaStream_t s) {
  const int64_t n = int64_t(rows) * cols;
  if (n == 0) return;
  MMFP4_LAUNCH(blocks_for(n), kThreads, 0, s, silu_mul_kernel)(g, gs, u, us, o, os, rows, cols);
  MMFP4_CUDA_LAUNCHED("silu_mul [", rows, ", ", cols, "]");
}

void launch_add(float* x, int64_t xs, const float* y, int64_t ys, int rows, int cols, cudaStream_t s) {
  const int64_t n = int64_t(rows) * cols;
  if (n == 0) return;
  MMFP4_LAUNCH(blocks_for(n), kThreads, 0, s, add_kernel)(x, xs, y, ys, rows, cols);
  MMFP4_CUDA_LAUNCHED("add [", rows, ", ", cols, "]");
}

void launch_add_bias(float* x, int64_t xs, int rows, int cols, const float* b, cudaStream_t s) {
  const int64_t n = int64_t(rows) * cols;
  if (n == 0) return;
  MMFP4_LAUNCH(blocks_for(n), kThreads, 0, s, add_bias_kernel)(x, xs, rows, cols, b);
  MMFP4_CUDA_LAUNCHED("add_bias [", rows, ", ", cols, "]");
}

void launch_gather_rows(const float* x, int64_t xs, const int32_t* rows, int n, int cols, float* out, int64_t os,
                        cudaStream_t s) {
  const int64_t total = int64_t(n) * cols;
  if (total == 0) return;
  MMFP4_LAUNCH(blocks_for(total), kThreads, 0, s, gather_kernel)(x, xs, rows, n, cols, out, os);
  MMFP4_CUDA_LAUNCHED("gather_rows ", n, " x ", cols);
}

}  // namespace mmfp4::cuda
