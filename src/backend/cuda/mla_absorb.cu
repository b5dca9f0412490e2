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

constexpr int kTokens = 8;   // tokens per block: each weight element is read once per 8 tokens
constexpr int kCols = 64;    // latent columns per block: two per lane
constexpr int kWarps = 8;    // warps split the head's nope rows (i = warp, warp + 8, ...)

// Block (head h, 64 latent columns, 8 tokens). Each warp sums its share of the rows for every column and token;
// the 8 partial sums are added in warp order (fixed, so results are deterministic). Decode (1 token, 20 heads,
// R = 512) gets 160 blocks of 8 warps, each lane with a dozen independent weight loads in flight.
__global__ void __launch_bounds__(kWarps * 32) absorb_q_kernel(const float* q_nope, int64_t qs, int T, int heads,
                                                                 int nope, int v, GemmWeight w, int R, float* q_lat,
                                                                 int64_t ls) {
  __shared__ float red[kWarps][kTokens][kCols];
  const int h = blockIdx.x, j0 = blockIdx.y * kCols, t0 = blockIdx.z * kTokens;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = h * (nope + v);
  const int ja = j0 + lane, jb = j0 + 32 + lane;
  float acc[kTokens][2] = {};
#pragma unroll 4
  for (int i = warp; i < nope; i += kWarps) {
    const float wa = ja < R ? weight_at(w, 0, row0 + i, ja) : 0.0f;
    const float wb = jb < R ? weight_at(w, 0, row0 + i, jb) : 0.0f;
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt)
      if (t0 + tt < T) {
        const float q = q_nope[(int64_t(t0 + tt) * heads + h) * qs + i];
        acc[tt][0] = fmaf(q, wa, acc[tt][0]);
        acc[tt][1] = fmaf(q, wb, acc[tt][1]);
      }
  }
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
    red[warp][tt][lane] = acc[tt][0];
    red[warp][tt][32 + lane] = acc[tt][1];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kTokens * kCols; idx += blockDim.x) {
    const int tt = idx / kCols, jj = idx % kCols;
    if (t0 + tt >= T || j0 + jj >= R) continue;
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kWarps; ++k) s += red[k][tt][jj];
    q_lat[(int64_t(t0 + tt) * heads + h) * ls + j0 + jj] = s;
  }
}

}  // namespace

void launch_mla_absorb_q(const float* q_nope, int64_t qs, int rows, int heads, int nope, int v, const GemmWeight& w,
                         int R, float* q_lat, int64_t ls, cudaStream_t s) {
  const int T = rows / heads;
  if (T == 0) return;
  const dim3 grid(unsigned(heads), unsigned((R + kCols - 1) / kCols), unsigned((T + kTokens - 1) / kTokens));
  absorb_q_kernel<<<grid, kWarps * 32, 0, s>>>(q_nope, qs, T, heads, nope, v, w, R, q_lat, ls);
  MMFP4_CUDA_LAUNCHED("mla_absorb_q ", T, " tokens x ", heads, " heads, nope ", nope, ", R ", R);
}

}  // namespace mmfp4::cuda
