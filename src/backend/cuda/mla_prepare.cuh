// MLA's steps between kv_a and the attention for one token row (mla_prepare.cu; also run by the blocks that
// mla_absorb.cu's fused launch adds): latent = rmsnorm(c) * w, rope on kpe and on every query head's rope columns,
// latent and kpe stored at the token's cache slot. The same arithmetic as rmsnorm.cu (thread count and reduction
// order), rope.cu and kv_store.cu. The whole block works on row t.
#pragma once

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

template <typename T>
__device__ __forceinline__ void mla_prepare_row(const MlaPrepArgs& p, int t) {
  __shared__ float red[32];
  const int nthr = blockDim.x;
  float* c = p.ckv + int64_t(t) * p.ckv_stride;  // [c | kpe]
  float* lat = p.latent + int64_t(t) * p.latent_stride;
  const int32_t slot = p.slots[t];
  T* dst = slot >= 0 ? static_cast<T*>(p.cache) + int64_t(slot) * p.width : nullptr;
  auto put = [&](int col, float v) {
    if constexpr (sizeof(T) == 4)
      dst[col] = v;
    else
      dst[col] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  };
  // rmsnorm (rmsnorm.cu: the same threads stride the row, then block_sum).
  float ss = 0.0f;
  for (int i = threadIdx.x; i < p.R; i += nthr) ss = fmaf(c[i], c[i], ss);
  const float ms = block_sum(ss, red) / float(p.R);
  const float inv = 1.0f / sqrtf(ms + p.eps);
  for (int i = threadIdx.x; i < p.R; i += nthr) {
    const float v = c[i] * inv * p.norm_w[i];
    lat[i] = v;
    if (dst) put(i, v);
  }
  // rope (rope.cu), kpe then the query heads; a position outside the table leaves the values unrotated.
  const int pos = p.positions[t];
  const bool rot = pos >= 0 && pos < p.max_positions;
  const int half = p.P / 2;
  for (int idx = threadIdx.x; idx < (1 + p.heads) * half; idx += nthr) {
    const int h = idx / half - 1, i = idx % half;  // h = -1: kpe
    float* x = h < 0 ? c + p.R : p.q + int64_t(t) * p.q_stride + int64_t(h) * p.head_stride + p.q_off;
    const int ia = p.interleaved ? 2 * i : i, ib = p.interleaved ? 2 * i + 1 : i + half;
    if (rot) {
      const float cs = p.cos_t[int64_t(pos) * half + i], sn = p.sin_t[int64_t(pos) * half + i];
      const float a = x[ia], b = x[ib];
      x[ia] = a * cs - b * sn;
      x[ib] = b * cs + a * sn;
    }
    if (h < 0 && dst) {
      put(p.R + ia, x[ia]);
      put(p.R + ib, x[ib]);
    }
  }
}

}  // namespace mmfp4::cuda
