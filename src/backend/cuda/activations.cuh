// Device helpers shared by the activation preparation (activations.cu) and the GEMM's in-kernel staging
// (gemv_fp4.cu): which fp32 row feeds a 16-bit fragment row, and the hi/lo rounding. One definition, so the staged
// and the prepared paths give the same bits.
#pragma once

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

// The x row that feeds fragment row `row` (PrepArgs), or -1 for a zero row.
__device__ __forceinline__ int64_t prep_source_row(const PrepArgs& p, int row) {
  if (p.hm_heads > 0) {
    const int h = row / p.hm_tpad, t = row % p.hm_tpad;
    return (h < p.hm_heads && t < p.hm_tokens) ? int64_t(t) * p.hm_heads + h : -1;
  }
  if (row >= p.m) return -1;
  if (p.row_map) {
    const int32_t r = p.row_map[row];
    return r < 0 ? -1 : (p.map_is_mask ? row : r / p.row_div);
  }
  return p.row_div > 1 ? row / p.row_div : row;  // no map: row i of a direct MoE tile reads token i / slots
}

// v[i] = silu(gate i) * up i for eight gate values (g0, g1) and their up values (u0, u1).
__device__ __forceinline__ void silu_mul8(const float4& g0, const float4& g1, const float4& u0, const float4& u1,
                                          float (&v)[8]) {
  v[0] = silu_mul_value(g0.x, u0.x), v[1] = silu_mul_value(g0.y, u0.y);
  v[2] = silu_mul_value(g0.z, u0.z), v[3] = silu_mul_value(g0.w, u0.w);
  v[4] = silu_mul_value(g1.x, u1.x), v[5] = silu_mul_value(g1.y, u1.y);
  v[6] = silu_mul_value(g1.z, u1.z), v[7] = silu_mul_value(g1.w, u1.w);
}

// Eight columns [k0, k0 + 8) of x row `src` (zeros past k_valid or for src < 0).
__device__ __forceinline__ void prep_load8(const PrepArgs& p, int64_t src, int k0, bool vec_ok, float (&v)[8]) {
  if (src >= 0) {
    const float* xr = p.x + src * p.x_stride;
    if (p.glu_off > 0 && vec_ok && k0 + 8 <= p.k_valid && p.glu_off % 4 == 0) {  // four 16-byte loads
      silu_mul8(*reinterpret_cast<const float4*>(xr + k0), *reinterpret_cast<const float4*>(xr + k0 + 4),
                *reinterpret_cast<const float4*>(xr + k0 + p.glu_off),
                *reinterpret_cast<const float4*>(xr + k0 + p.glu_off + 4), v);
    } else if (p.glu_off > 0) {
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = (k0 + i < p.k_valid) ? silu_mul_value(xr[k0 + i], xr[k0 + i + p.glu_off]) : 0.0f;
    } else if (vec_ok && k0 + 8 <= p.k_valid) {
      const float4 a = *reinterpret_cast<const float4*>(xr + k0), b = *reinterpret_cast<const float4*>(xr + k0 + 4);
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = (k0 + i < p.k_valid) ? xr[k0 + i] : 0.0f;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = 0.0f;
  }
}

// Eight values -> 16-bit hi halves and the lo halves x - hi (f16 saturating, or bf16).
__device__ __forceinline__ void prep_split8(const float (&v)[8], bool f16, uint32_t (&hi)[4], uint32_t (&lo)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (f16) {
      hi[i] = pack_f16x2_sat(v[2 * i], v[2 * i + 1]);
      const __half2 h = *reinterpret_cast<const __half2*>(&hi[i]);
      lo[i] = pack_f16x2_sat(v[2 * i] - __low2float(h), v[2 * i + 1] - __high2float(h));
    } else {
      hi[i] = pack_bf16x2(v[2 * i], v[2 * i + 1]);
      const __nv_bfloat162 h = *reinterpret_cast<const __nv_bfloat162*>(&hi[i]);
      lo[i] = pack_bf16x2(v[2 * i] - __low2float(h), v[2 * i + 1] - __high2float(h));
    }
  }
}

// Eight activations staged for the raw decode loop's paired columns (gemv_token.cu, attention.cu's W_UV): v x
// kRawActScale as bf16 hi halves at hi_dst and lo halves at lo_dst, 16 bytes each.
__device__ __forceinline__ void stage_raw8(float (&v)[8], uint16_t* hi_dst, uint16_t* lo_dst) {
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] *= kRawActScale;
  uint32_t hi[4], lo[4];
  prep_split8(v, false, hi, lo);
  *reinterpret_cast<uint4*>(hi_dst) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
  *reinterpret_cast<uint4*>(lo_dst) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
}

}  // namespace mmfp4::cuda
