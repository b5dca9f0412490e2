// MoE routing on the device, the selection rules of backend/cpu/cpu_moe.cpp exactly: softmax over all experts then
// top-k (qwen3_moe), or sigmoid + correction bias with grouped top-k, weights from the unbiased sigmoid,
// normalised and scaled (deepseek_v3, glm4_moe_lite). Ties go to the lower index. One thread per token runs the
// same sequential loops as the reference (sums in the same order); expert scores live in per-thread local memory.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/moe_route.cuh"

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

// Fast path (FastPaths::moe; no expert groups, E <= 1024): a warp per token (route_token_warp, moe_route.cuh): the
// same choices and the same bits as the one-thread loops, in ~K x 5 shuffles instead of K x E dependent steps.
__global__ void route_warp_kernel(const float* logits, int64_t ls, int T, RouteArgs a) {
  pdl_enter();
  __shared__ float sm[4][kMaxExperts];
  const int warp = threadIdx.x / 32, t = blockIdx.x * 4 + warp;
  if (t >= T) return;  // whole warp
  route_token_warp<kMaxExperts / 32>(logits + int64_t(t) * ls, a, t, sm[warp]);
}

}  // namespace

void launch_moe_route_warp(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid, int top_k,
                           bool norm_topk_prob, float scaling, int shared, int32_t* ids, float* w, cudaStream_t s) {
  if (E > kMaxExperts || top_k > 32) fail("moe_route (warp): ", E, " experts, top ", top_k);
  if (T == 0) return;
  RouteArgs a;
  a.ids = ids, a.w = w, a.bias = bias, a.E = E, a.K = top_k, a.shared = shared, a.sigmoid = sigmoid;
  a.norm = norm_topk_prob, a.scaling = scaling;
  MMFP4_LAUNCH((T + 3) / 4, 128, 0, s, route_warp_kernel)(logits, ls, T, a);
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
