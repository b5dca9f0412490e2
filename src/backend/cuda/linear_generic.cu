// The fallback linear kernel: y (+)= x W^T in float32 FMAs with exact weights, for every shape and format the
// tensor-core kernel does not take (float32 dense weights, group sizes that are not a multiple of 32, row slices not
// on a 16-row tile). Slow but never wrong: one warp per weight row, lanes along K, a fixed reduction order.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kRowsPerPass = 8;

__global__ void gemm_generic_kernel(GenericArgs p) {
  pdl_enter();
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int n = blockIdx.x * (blockDim.x / kWarp) + warp;
  int expert = 0, r0, r1;
  if (p.tiles.tiles) {
    if (int(blockIdx.y) >= *p.tiles.count) return;
    expert = p.tiles.tiles[3 * blockIdx.y];
    r0 = p.tiles.tiles[3 * blockIdx.y + 1];
    r1 = r0 + p.tiles.tiles[3 * blockIdx.y + 2];
  } else {
    r0 = blockIdx.y * kRowsPerPass;
    r1 = min(p.m, r0 + kRowsPerPass);
  }
  if (n >= p.w.n) return;
  for (int base = r0; base < r1; base += kRowsPerPass) {
    const float* xr[kRowsPerPass];
#pragma unroll
    for (int i = 0; i < kRowsPerPass; ++i) {
      xr[i] = nullptr;
      const int row = base + i;
      if (row >= r1) continue;
      int64_t src = row;
      if (p.row_map) src = p.row_map[row] < 0 ? -1 : (p.map_is_mask ? row : p.row_map[row] / p.row_div);
      if (src >= 0) xr[i] = p.x + src * p.x_stride;
    }
    float acc[kRowsPerPass] = {};
    for (int k = lane; k < p.k; k += kWarp) {
      const float wv = weight_at(p.w, expert, n, k);
#pragma unroll
      for (int i = 0; i < kRowsPerPass; ++i)
        if (xr[i]) acc[i] = fmaf(xr[i][k], wv, acc[i]);
    }
#pragma unroll
    for (int i = 0; i < kRowsPerPass; ++i) {
      const float v = warp_sum(acc[i]);
      if (lane == 0 && xr[i]) {
        float* o = p.y + int64_t(base + i) * p.y_stride + n;
        *o = p.accumulate ? *o + v : v;
      }
    }
  }
}

}  // namespace

void launch_gemm_generic(const GenericArgs& a, cudaStream_t s) {
  const int warps = 8;
  const int gy = a.tiles.tiles ? a.grid_tiles : (a.m + kRowsPerPass - 1) / kRowsPerPass;
  if (gy == 0 || a.w.n == 0) return;
  const dim3 grid(unsigned((a.w.n + warps - 1) / warps), unsigned(gy));
  MMFP4_LAUNCH(grid, warps * kWarp, 0, s, gemm_generic_kernel)(a);
  MMFP4_CUDA_LAUNCHED("linear (generic) W [", a.w.n, ", ", a.w.k, "] kind ", int(a.w.kind), ", x [", a.m, ", ",
                      a.k, "]");
}

}  // namespace mmfp4::cuda
