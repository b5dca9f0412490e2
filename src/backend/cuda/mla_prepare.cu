// MLA's steps between kv_a and the attention in one launch (Backend::mla_prepare; decode runs ~15 small kernels per
// layer, so each launch saved is ~4 us): per token, latent = rmsnorm(c) * w, rope on kpe and on every query head's
// rope columns, latent and kpe stored at the token's cache slot. The same arithmetic as rmsnorm.cu (thread count and
// reduction order), rope.cu and kv_store.cu; Hadamard-rotated latents take the ops one by one (cuda_backend.cpp).
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

template <typename T>
__global__ void mla_prepare_kernel(MlaPrepArgs p) {
  pdl_enter();
  __shared__ float red[32];
  const int t = blockIdx.x, nthr = blockDim.x;
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

}  // namespace

void launch_mla_prepare(const MlaPrepArgs& a, cudaStream_t s) {
  if (a.rows == 0) return;
  const int threads = a.R >= 1024 ? 256 : a.R >= 256 ? 128 : 64;  // rmsnorm.cu's choice: the same sum
  if (a.cache_f32)
    MMFP4_LAUNCH(a.rows, threads, 0, s, mla_prepare_kernel<float>)(a);
  else
    MMFP4_LAUNCH(a.rows, threads, 0, s, mla_prepare_kernel<uint16_t>)(a);
  MMFP4_CUDA_LAUNCHED("mla_prepare ", a.rows, " tokens, latent ", a.R, ", rope ", a.P, ", ", a.heads, " heads");
}

}  // namespace mmfp4::cuda
