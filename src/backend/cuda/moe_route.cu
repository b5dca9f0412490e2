// MoE routing on the device, the selection rules of backend/cpu/cpu_moe.cpp exactly: softmax over all experts then
// top-k (qwen3_moe), or sigmoid + correction bias with grouped top-k, weights from the unbiased sigmoid,
// normalised and scaled (deepseek_v3, glm4_moe_lite). Ties go to the lower index. One thread per token runs the
// same sequential loops as the reference (sums in the same order); expert scores live in per-thread local memory.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kMaxExperts = 1024;

// Index of the largest v[i] not yet taken (ties to the lower index); marks it taken.
__device__ int take_best(const float* v, int n, uint32_t* taken) {
  int best = -1;
  for (int i = 0; i < n; ++i) {
    if (taken[i / 32] & (1u << (i % 32))) continue;
    if (best < 0 || v[i] > v[best]) best = i;
  }
  if (best >= 0) taken[best / 32] |= 1u << (best % 32);
  return best < 0 ? 0 : best;
}

__global__ void route_kernel(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid, int K,
                             int n_group, int topk_group, bool norm, float scaling, int shared, int32_t* ids,
                             float* wout) {
  pdl_enter();
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= T) return;
  float s[kMaxExperts], ch[kMaxExperts];
  uint32_t taken[kMaxExperts / 32];
  for (int i = 0; i < kMaxExperts / 32; ++i) taken[i] = 0;
  const float* z = logits + int64_t(t) * ls;
  const int S = K + (shared >= 0 ? 1 : 0);  // slots per token: the shared expert last
  int32_t* id = ids + int64_t(t) * S;
  float* w = wout + int64_t(t) * S;
  if (shared >= 0) id[K] = shared, w[K] = 1.0f;
  if (!sigmoid) {
    float mx = -INFINITY;
    for (int e = 0; e < E; ++e) mx = fmaxf(mx, z[e]);
    float sum = 0.0f;
    for (int e = 0; e < E; ++e) sum += (s[e] = expf(z[e] - mx));
    for (int e = 0; e < E; ++e) s[e] /= sum;
    float tot = 0.0f;
    for (int j = 0; j < K; ++j) {
      id[j] = take_best(s, E, taken);
      tot += (w[j] = s[id[j]]);
    }
    if (norm)
      for (int j = 0; j < K; ++j) w[j] /= tot;
    return;
  }
  for (int e = 0; e < E; ++e) {
    s[e] = 1.0f / (1.0f + expf(-z[e]));
    ch[e] = s[e] + (bias ? bias[e] : 0.0f);
  }
  if (n_group > 1) {
    const int per = E / n_group;
    float gs[64];  // n_group <= 64 (checked by the launcher)
    for (int g = 0; g < n_group; ++g) {
      float a = -INFINITY, b2 = -INFINITY;
      for (int e = g * per; e < (g + 1) * per; ++e) {
        const float c = ch[e];
        if (c > a) {
          b2 = a;
          a = c;
        } else if (c > b2) {
          b2 = c;
        }
      }
      gs[g] = a + b2;
    }
    uint32_t gtaken[2] = {0, 0};
    uint64_t keep = 0;
    for (int i = 0; i < topk_group; ++i) keep |= uint64_t(1) << take_best(gs, n_group, gtaken);
    for (int e = 0; e < E; ++e)
      if (!(keep >> (e / per) & 1)) ch[e] = -INFINITY;
  }
  float tot = 0.0f;
  for (int j = 0; j < K; ++j) {
    id[j] = take_best(ch, E, taken);
    tot += (w[j] = s[id[j]]);
  }
  if (norm)
    for (int j = 0; j < K; ++j) w[j] /= (tot + 1e-20f);
  for (int j = 0; j < K; ++j) w[j] *= scaling;
}

// Fast path (FastPaths::moe; no expert groups, E <= 1024): a warp per token. Lane l holds experts l, l + 32, ...;
// the per-expert values are computed exactly as above, the softmax denominator is summed by lane 0 in expert order
// (as above), and each of the K picks is a warp argmax of (value, index) that prefers the lower index on ties: the
// same choices and the same bits as the one-thread loops, in ~K x 5 shuffles instead of K x E dependent steps.
constexpr int kSlots = kMaxExperts / 32;

__device__ __forceinline__ void warp_best(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (oi >= 0 && (i < 0 || ov > v || (ov == v && oi < i))) v = ov, i = oi;
  }
}

__global__ void route_warp_kernel(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid,
                                  int K, bool norm, float scaling, int shared, int32_t* ids, float* wout) {
  pdl_enter();
  __shared__ float sm[4][kMaxExperts];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = blockIdx.x * 4 + warp;
  if (t >= T) return;  // whole warp
  const float* z = logits + int64_t(t) * ls;
  float s[kSlots], key[kSlots];
  uint32_t taken = 0;
  if (!sigmoid) {
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < kSlots; ++i)
      if (i * 32 + lane < E) mx = fmaxf(mx, z[i * 32 + lane]);
    mx = warp_max(mx);
#pragma unroll
    for (int i = 0; i < kSlots; ++i)
      if (i * 32 + lane < E) sm[warp][i * 32 + lane] = s[i] = expf(z[i * 32 + lane] - mx);
    __syncwarp();
    float sum = 0.0f;
    if (lane == 0)
      for (int e = 0; e < E; ++e) sum += sm[warp][e];
    sum = __shfl_sync(0xffffffffu, sum, 0);
#pragma unroll
    for (int i = 0; i < kSlots; ++i)
      if (i * 32 + lane < E) key[i] = s[i] = s[i] / sum;
  } else {
#pragma unroll
    for (int i = 0; i < kSlots; ++i)
      if (i * 32 + lane < E) {
        s[i] = 1.0f / (1.0f + expf(-z[i * 32 + lane]));
        key[i] = s[i] + (bias ? bias[i * 32 + lane] : 0.0f);
      }
  }
  float wsel[32];
  int isel[32];
  float tot = 0.0f;
  for (int j = 0; j < K && j < 32; ++j) {
    float v = 0.0f, wv = 0.0f;
    int idx = -1, slot = -1;
#pragma unroll
    for (int i = 0; i < kSlots; ++i)
      if (i * 32 + lane < E && !(taken >> i & 1) && (idx < 0 || key[i] > v)) v = key[i], idx = i * 32 + lane, slot = i;
    int best = idx;
    float bv = v;
    warp_best(bv, best);
    if (best == idx && idx >= 0) {
      taken |= 1u << slot;
#pragma unroll
      for (int i = 0; i < kSlots; ++i)
        if (i == slot) wv = s[i];
    }
    wv = __shfl_sync(0xffffffffu, wv, best % 32);
    wsel[j] = wv;
    isel[j] = best;
    tot += wv;
  }
  if (lane != 0) return;
  const int S = K + (shared >= 0 ? 1 : 0);
  for (int j = 0; j < K; ++j) {
    float wj = wsel[j];
    if (norm) wj /= sigmoid ? (tot + 1e-20f) : tot;
    if (sigmoid) wj *= scaling;
    ids[int64_t(t) * S + j] = isel[j];
    wout[int64_t(t) * S + j] = wj;
  }
  if (shared >= 0) {
    ids[int64_t(t) * S + K] = shared;
    wout[int64_t(t) * S + K] = 1.0f;
  }
}

}  // namespace

void launch_moe_route_warp(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid, int top_k,
                           bool norm_topk_prob, float scaling, int shared, int32_t* ids, float* w, cudaStream_t s) {
  if (E > kMaxExperts || top_k > 32) fail("moe_route (warp): ", E, " experts, top ", top_k);
  if (T == 0) return;
  MMFP4_LAUNCH((T + 3) / 4, 128, 0, s, route_warp_kernel)(logits, ls, T, E, bias, sigmoid, top_k, norm_topk_prob,
                                                         scaling, shared, ids, w);
  MMFP4_CUDA_LAUNCHED("moe_route (warp) ", T, " tokens x ", E, " experts, top ", top_k, sigmoid ? " (sigmoid)" : "");
}

void launch_moe_route(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid, int top_k,
                      int n_group, int topk_group, bool norm_topk_prob, float scaling, int shared, int32_t* ids,
                      float* w, cudaStream_t s) {
  if (E > kMaxExperts || n_group > 64) fail("moe_route: ", E, " experts in ", n_group, " groups exceed the CUDA router");
  if (T == 0) return;
  MMFP4_LAUNCH((T + 63) / 64, 64, 0, s, route_kernel)(logits, ls, T, E, bias, sigmoid, top_k, n_group, topk_group,
                                             norm_topk_prob, scaling, shared, ids, w);
  MMFP4_CUDA_LAUNCHED("moe_route ", T, " tokens x ", E, " experts, top ", top_k, sigmoid ? " (sigmoid)" : "");
}

}  // namespace mmfp4::cuda
