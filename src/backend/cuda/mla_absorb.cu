// Absorbed MLA, query side: q_lat[t, h] = W_UK_h^T q_nope[t, h], with W_UK_h = rows [h(nope+v), h(nope+v)+nope) of
// the stored kv_b_proj [heads * (nope + v), R] (rotated domain when kv_b is rotated: the cache holds H c then).
// The product contracts over the weight's rows, so a thread owns one latent column j and walks the head's nope rows
// (weights read once per block of tokens, float32 accumulation in row order as the CPU reference).
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kTokens = 8;  // tokens per block: each weight element is read once per 8 tokens

__global__ void absorb_q_kernel(const float* q_nope, int64_t qs, int T, int heads, int nope, int v, GemmWeight w,
                                int R, float* q_lat, int64_t ls) {
  const int h = blockIdx.x;
  const int j = blockIdx.y * blockDim.x + threadIdx.x;
  const int t0 = blockIdx.z * kTokens;
  if (j >= R) return;
  float acc[kTokens] = {};
  const int row0 = h * (nope + v);
  for (int i = 0; i < nope; ++i) {
    const float wv = weight_at(w, 0, row0 + i, j);
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt)
      if (t0 + tt < T) acc[tt] = fmaf(q_nope[(int64_t(t0 + tt) * heads + h) * qs + i], wv, acc[tt]);
  }
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt)
    if (t0 + tt < T) q_lat[(int64_t(t0 + tt) * heads + h) * ls + j] = acc[tt];
}

}  // namespace

void launch_mla_absorb_q(const float* q_nope, int64_t qs, int rows, int heads, int nope, int v, const GemmWeight& w,
                         int R, float* q_lat, int64_t ls, cudaStream_t s) {
  const int T = rows / heads;
  if (T == 0) return;
  const int threads = 128;
  const dim3 grid(unsigned(heads), unsigned((R + threads - 1) / threads), unsigned((T + kTokens - 1) / kTokens));
  absorb_q_kernel<<<grid, threads, 0, s>>>(q_nope, qs, T, heads, nope, v, w, R, q_lat, ls);
  MMFP4_CUDA_LAUNCHED("mla_absorb_q ", T, " tokens x ", heads, " heads, nope ", nope, ", R ", R);
}

}  // namespace mmfp4::cuda
