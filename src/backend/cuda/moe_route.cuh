// MoE routing of one token by one warp (FastPaths::moe: no expert groups, E <= 1024, top_k <= 32), shared by the
// routing kernel (moe_route.cu) and the router GEMM's epilogue (gemv_fp4.cu, RouteArgs): the same function, so the
// fused routing gives the routing kernel's bits. Lane l holds experts l, l + 32, ...; the per-expert values are
// computed as the one-thread reference loops do (moe_route.cu, backend/cpu/cpu_moe.cpp), the softmax denominator is
// summed by lane 0 in expert order, and each of the K picks is a warp argmax of (value, index) preferring the lower
// index on ties. Lane j keeps pick j, so nothing goes through local memory.
#pragma once

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

// (v, i) of the warp's best: larger v, then lower i; i < 0 is "none".
__device__ __forceinline__ void route_warp_best(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (oi >= 0 && (i < 0 || ov > v || (ov == v && oi < i))) v = ov, i = oi;
  }
}

// Token row z (E <= 32 SLOTS logits) -> ids / weights of its top_k slots (+ the shared expert's slot with weight 1
// when a.shared >= 0). sm: E floats of this warp's shared memory for the softmax (may be null when a.sigmoid).
// SLOTS only bounds E (registers): every SLOTS gives the same bits.
template <int SLOTS>
__device__ __forceinline__ void route_token_warp(const float* z, const RouteArgs& a, int t, float* sm) {
  const int lane = threadIdx.x % kWarp, E = a.E, K = a.K;
  float s[SLOTS], key[SLOTS];
  uint32_t taken = 0;
  if (!a.sigmoid) {
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < SLOTS; ++i)
      if (i * 32 + lane < E) mx = fmaxf(mx, z[i * 32 + lane]);
    mx = warp_max(mx);
#pragma unroll
    for (int i = 0; i < SLOTS; ++i)
      if (i * 32 + lane < E) sm[i * 32 + lane] = s[i] = expf(z[i * 32 + lane] - mx);
    __syncwarp();
    float sum = 0.0f;
    if (lane == 0)
      for (int e = 0; e < E; ++e) sum += sm[e];
    sum = __shfl_sync(0xffffffffu, sum, 0);
#pragma unroll
    for (int i = 0; i < SLOTS; ++i)
      if (i * 32 + lane < E) key[i] = s[i] = s[i] / sum;
  } else {
#pragma unroll
    for (int i = 0; i < SLOTS; ++i)
      if (i * 32 + lane < E) {
        s[i] = 1.0f / (1.0f + expf(-z[i * 32 + lane]));
        key[i] = s[i] + (a.bias ? a.bias[i * 32 + lane] : 0.0f);
      }
  }
  float mine_w = 0.0f, tot = 0.0f;
  int mine_i = 0;
  for (int j = 0; j < K && j < 32; ++j) {
    float v = 0.0f, wv = 0.0f;
    int idx = -1, slot = -1;
#pragma unroll
    for (int i = 0; i < SLOTS; ++i)
      if (i * 32 + lane < E && !(taken >> i & 1) && (idx < 0 || key[i] > v)) v = key[i], idx = i * 32 + lane, slot = i;
    int best = idx;
    float bv = v;
    route_warp_best(bv, best);
    if (best == idx && idx >= 0) {
      taken |= 1u << slot;
#pragma unroll
      for (int i = 0; i < SLOTS; ++i)
        if (i == slot) wv = s[i];
    }
    wv = __shfl_sync(0xffffffffu, wv, best % 32);
    if (lane == j) mine_w = wv, mine_i = best;
    tot += wv;
  }
  const int S = K + (a.shared >= 0 ? 1 : 0);
  if (lane < K) {
    float wj = mine_w;
    if (a.norm) wj /= a.sigmoid ? (tot + 1e-20f) : tot;
    if (a.sigmoid) wj *= a.scaling;
    a.ids[int64_t(t) * S + lane] = mine_i;
    a.w[int64_t(t) * S + lane] = wj;
  }
  if (a.shared >= 0 && lane == 0) {
    a.ids[int64_t(t) * S + K] = a.shared;
    a.w[int64_t(t) * S + K] = 1.0f;
  }
}

}  // namespace mmfp4::cuda
