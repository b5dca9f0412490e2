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
                             int n_group, int topk_group, bool norm, float scaling, int32_t* ids, float* wout) {
  pdl_enter();
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= T) return;
  float s[kMaxExperts], ch[kMaxExperts];
  uint32_t taken[kMaxExperts / 32];
  for (int i = 0; i < kMaxExperts / 32; ++i) taken[i] = 0;
  const float* z = logits + int64_t(t) * ls;
  int32_t* id = ids + int64_t(t) * K;
  float* w = wout + int64_t(t) * K;
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

}  // namespace

void launch_moe_route(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid, int top_k,
                      int n_group, int topk_group, bool norm_topk_prob, float scaling, int32_t* ids, float* w,
                      cudaStream_t s) {
  if (E > kMaxExperts || n_group > 64) fail("moe_route: ", E, " experts in ", n_group, " groups exceed the CUDA router");
  if (T == 0) return;
  MMFP4_LAUNCH((T + 63) / 64, 64, 0, s, route_kernel)(logits, ls, T, E, bias, sigmoid, top_k, n_group, topk_group,
                                             norm_topk_prob, scaling, ids, w);
  MMFP4_CUDA_LAUNCHED("moe_route ", T, " tokens x ", E, " experts, top ", top_k, sigmoid ? " (sigmoid)" : "");
}

}  // namespace mmfp4::cuda
