// The mma A fragments of a 16-bit dense weight (bf16 or f16 rows as stored), shared by the decode GEMV's dense loop
// (gemv_fp4.cu) and the one-token-tile dense launch (gemv_dense.cu), so both compute the same products in the same
// order (the same bits). A 64-column chunk of a 16-row tile: lane (g = lane / 4, c = lane % 4) loads 16 bytes of row
// g and of row g + 8 at columns 32 b + 8 c, b = 0, 1; the column order this gives an mma step is the permutation the
// activation fragments use (kernels.h, PrepArgs).
#pragma once

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

// 16 bytes (8 elements) of a dense row from column k0, zero past column k (and not read there).
__device__ __forceinline__ uint4 dense_load(const uint16_t* row, int k0, int k, bool vec_ok) {
  if (vec_ok && k0 + 8 <= k) return ld_stream(reinterpret_cast<const uint4*>(row + k0));
  uint16_t e[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) e[i] = (k0 + i < k) ? row[k0 + i] : uint16_t(0);
  uint4 v;
  v.x = e[0] | uint32_t(e[1]) << 16;
  v.y = e[2] | uint32_t(e[3]) << 16;
  v.z = e[4] | uint32_t(e[5]) << 16;
  v.w = e[6] | uint32_t(e[7]) << 16;
  return v;
}

// Chunk ch of rows row_lo (g) and row_hi (g + 8): d = {lo b0, hi b0, lo b1, hi b1}.
__device__ __forceinline__ void dense_fetch(const uint16_t* row_lo, const uint16_t* row_hi, int ch, int c, int k,
                                            bool vec_ok, uint4 (&d)[4]) {
#pragma unroll
  for (int b = 0; b < 2; ++b) {
    const int k0 = ch * 64 + 32 * b + 8 * c;
    d[2 * b] = dense_load(row_lo, k0, k, vec_ok);
    d[2 * b + 1] = dense_load(row_hi, k0, k, vec_ok);
  }
}

template <WKind KIND>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (KIND == WKind::F16)
    mma_f16_16816(d, a, b0, b1);
  else
    mma_bf16_16816(d, a, b0, b1);
}

// One k32 step b of a chunk (wl, wh: its row-g and row-g+8 words, d[2b] and d[2b + 1] of dense_fetch) against an
// n8 token tile's activation fragments: the high halves, then (split activations) the low halves.
template <WKind KIND>
__device__ __forceinline__ void dense_step(float (&acc)[4], uint4 wl, uint4 wh, uint4 xh, uint4 xl, bool split) {
  const uint32_t a0[4] = {wl.x, wh.x, wl.y, wh.y};
  const uint32_t a1[4] = {wl.z, wh.z, wl.w, wh.w};
  mma<KIND>(acc, a0, xh.x, xh.y);
  mma<KIND>(acc, a1, xh.z, xh.w);
  if (split) {
    mma<KIND>(acc, a0, xl.x, xl.y);
    mma<KIND>(acc, a1, xl.z, xl.w);
  }
}

}  // namespace mmfp4::cuda
