// Greedy sampling on the device: argmax of each row, ties to the lowest index (as the host sampler).
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi) || (bi < 0);
}

__global__ void argmax_kernel(const float* x, int64_t xs, int cols, int32_t* ids) {
  pdl_enter();
  __shared__ float sv[32];
  __shared__ int si[32];
  const float* r = x + int64_t(blockIdx.x) * xs;
  float bv = -INFINITY;
  int bi = -1;
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    if (bi < 0 || r[c] > bv) bv = r[c], bi = c;  // strided scan: a later equal value never wins
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (oi >= 0 && better(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sv[warp] = bv, si[warp] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < int(blockDim.x / 32); ++w)
      if (si[w] >= 0 && better(sv[w], si[w], bv, bi)) bv = sv[w], bi = si[w];
    ids[blockIdx.x] = bi < 0 ? 0 : bi;
  }
}

}  // namespace

void launch_argmax_rows(const float* x, int64_t xs, int rows, int cols, int32_t* ids, cudaStream_t s) {
  if (rows == 0) return;
  MMFP4_LAUNCH(rows, 256, 0, s, argmax_kernel)(x, xs, cols, ids);
  MMFP4_CUDA_LAUNCHED("argmax ", rows, " rows x ", cols);
}

}  // namespace mmfp4::cuda
