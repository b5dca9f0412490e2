// Activations for the tensor-core linear kernels: float32 rows -> 16-bit mma B fragments in the order the weight
// tiles use (kernels.h, PrepArgs; repack.h). Converting once per linear call, instead of in every warp that reads
// the activations, keeps the GEMM's inner loop to one 16-byte load per 8 tokens x 32 columns. Rows can be gathered
// through a map (MoE: tokens sorted by expert); missing rows and columns past k are zeros.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

__global__ void prepare_kernel(PrepArgs p, bool vec_ok) {
  const int64_t wid = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp, g = lane >> 2, c = lane & 3;
  const int64_t n_items = int64_t(p.rows_pad / 8) * p.kb32;
  if (wid >= n_items) return;
  const int tt = int(wid / p.kb32), kb = int(wid % p.kb32);
  const int row = tt * 8 + g, k0 = kb * 32 + 8 * c;
  int64_t src = -1;
  if (p.hm_heads > 0) {
    const int h = row / p.hm_tpad, t = row % p.hm_tpad;
    if (h < p.hm_heads && t < p.hm_tokens) src = int64_t(t) * p.hm_heads + h;
  } else if (row < p.m) {
    if (p.row_map) {
      const int32_t r = p.row_map[row];
      if (r >= 0) src = p.map_is_mask ? row : r / p.row_div;
    } else {
      src = row;
    }
  }
  float v[8];
  if (src >= 0) {
    const float* xr = p.x + src * p.x_stride;
    if (vec_ok && k0 + 8 <= p.k_valid) {
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
  uint32_t hi[4], lo[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (p.f16) {
      hi[i] = pack_f16x2_sat(v[2 * i], v[2 * i + 1]);
      const __half2 h = *reinterpret_cast<const __half2*>(&hi[i]);
      lo[i] = pack_f16x2_sat(v[2 * i] - __low2float(h), v[2 * i + 1] - __high2float(h));
    } else {
      hi[i] = pack_bf16x2(v[2 * i], v[2 * i + 1]);
      const __nv_bfloat162 h = *reinterpret_cast<const __nv_bfloat162*>(&hi[i]);
      lo[i] = pack_bf16x2(v[2 * i] - __low2float(h), v[2 * i + 1] - __high2float(h));
    }
  }
  static_cast<uint4*>(p.xb)[wid * 32 + lane] = make_uint4(hi[0], hi[1], hi[2], hi[3]);
  if (p.xb_lo) static_cast<uint4*>(p.xb_lo)[wid * 32 + lane] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
}

}  // namespace

void launch_prepare_activations(const PrepArgs& p, cudaStream_t s) {
  const int64_t warps = int64_t(p.rows_pad / 8) * p.kb32;
  if (warps == 0) return;
  const bool vec_ok = (p.x_stride % 4) == 0 && (reinterpret_cast<uintptr_t>(p.x) % 16) == 0;
  const int threads = 256;
  const int64_t blocks = (warps * kWarp + threads - 1) / threads;
  prepare_kernel<<<unsigned(blocks), threads, 0, s>>>(p, vec_ok);
  MMFP4_CUDA_LAUNCHED("prepare activations [", p.m, ", ", p.k_valid, "] -> ", p.rows_pad, " x ", p.kb32 * 32,
                      p.f16 ? " f16" : " bf16");
}

}  // namespace mmfp4::cuda
