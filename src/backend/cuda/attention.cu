// Causal attention over the paged bf16 KV cache, for GQA (a kv head and the query heads that share it) and for
// absorbed MLA (every head shares one key/value: the latent [c ; kpe], values = c). Both are "a group of query heads
// over one key/value stream", so one kernel serves both: a block per (token, group of up to HG query heads)
// reads each key and value row once for the whole group, with a float32 online softmax (flash-attention style
// running max and sum), so the context length is not limited by shared memory.
// Per-step values (position, sequence, block table) come from device memory: the kernel is graph-replay safe.
// Split over the KV length (FastPaths::attn; decode, where there are few (token, group) blocks): grid.z splits each
// token's keys into equal ranges, every block writes its unnormalised output with its running max and sum, and the
// splits are merged in split order (deterministic). The number of splits is fixed at launch (graphs
// record it); the ranges are computed on the device from the token's position, so an empty range is fine. The
// last block of each (token, head group) to finish merges the splits.
#include <cstdlib>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kHeads = 8;     // query heads per block (2 when that leaves the SMs idle: heads_per_block)
constexpr int kTile = 32;     // keys per step
constexpr int kThreads = 256;     // 8 warps: 4 keys of a 32-key tile each (decode is latency-bound per warp)
constexpr int kMaxDvPerThread = 2;  // dv <= 512
constexpr int kMaxKeyVecs = 4;      // 16-byte vectors per lane of a key row: dk <= 4 x 32 x 8 (bf16) / x 4 (f32)

__device__ __forceinline__ float cache_value(const uint16_t* p, int64_t i) { return bf16_bits_to_f32(p[i]); }
__device__ __forceinline__ float cache_value(const float* p, int64_t i) { return p[i]; }

// Elements of T in one 16-byte vector, and the vector's elements as floats.
template <typename T> constexpr int kVecElems = 16 / int(sizeof(T));
__device__ __forceinline__ void unpack_vec(const uint4& v, float (&f)[8]) {  // 8 bf16
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void unpack_vec(const uint4& v, float (&f)[4]) {  // 4 f32
  f[0] = __uint_as_float(v.x);
  f[1] = __uint_as_float(v.y);
  f[2] = __uint_as_float(v.z);
  f[3] = __uint_as_float(v.w);
}

constexpr int kMaxSplits = 16;  // the backend's kAttnMaxSplits

// The merge of a (token, head group)'s splits by its last block: out[t, h] = sum_s w_s o_s / sum_s w_s l_s with
// w_s = exp(m_s - max_s m_s), splits in order. A split that saw no key has m_s = -inf and weight 0, and its output
// was never written nor is it read (split 0 always sees key 0). The weights are computed once per head; the
// (head, column) outputs are spread over the block. Reads through L2: other blocks wrote the partials.
template <int HG>
__device__ void combine_splits(const AttnArgs& p, const AttnSplit& sp, int t, int hfirst, int nh) {
  __shared__ float wts[HG][kMaxSplits];
  __shared__ float inv_l[HG];
  __shared__ int used[HG];
  if (threadIdx.x < nh) {
    const int hh = threadIdx.x;
    const int64_t row0 = (int64_t(t) * p.heads + hfirst + hh) * sp.splits;
    float mx = -INFINITY;
    for (int s = 0; s < sp.splits; ++s) mx = fmaxf(mx, __ldcg(sp.ml + 2 * (row0 + s)));
    float l = 0.0f;
    int u = 0;
    for (int s = 0; s < sp.splits; ++s) {
      const float m = __ldcg(sp.ml + 2 * (row0 + s));
      const float w = m == -INFINITY ? 0.0f : expf(m - mx);
      wts[hh][s] = w;
      if (w != 0.0f) u = s + 1;
      l = fmaf(w, __ldcg(sp.ml + 2 * (row0 + s) + 1), l);
    }
    inv_l[hh] = 1.0f / l;
    used[hh] = u;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < nh * p.dv; idx += blockDim.x) {
    const int hh = idx / p.dv, d = idx % p.dv;
    const int64_t row0 = (int64_t(t) * p.heads + hfirst + hh) * sp.splits;
    float o = 0.0f;
    for (int s = 0; s < used[hh]; ++s)
      if (wts[hh][s] != 0.0f) o = fmaf(wts[hh][s], __ldcg(sp.o + (row0 + s) * p.dv + d), o);
    p.out[int64_t(t) * p.out_row_stride + int64_t(hfirst + hh) * p.out_head_stride + d] = o * inv_l[hh];
  }
}

template <typename T, bool SPLIT, int HG>
__global__ void __launch_bounds__(kThreads) attention_kernel(AttnArgs p, int sub_groups, AttnSplit sp) {
  pdl_enter();
  const T* cache = static_cast<const T*>(p.cache);
  MMFP4_DYN_SMEM(float, smem);
  const int dk = p.d1 + p.d2;
  float* q = smem;                // [HG][dk]
  float* sc = q + HG * dk;        // [HG][kTile] scores, then probabilities
  float* corr = sc + HG * kTile;  // [HG] rescale of the running sums
  float* msum = corr + HG;        // [HG] running max
  float* lsum = msum + HG;        // [HG] running denominator
  __shared__ int64_t rowoff[kTile];

  const int t = blockIdx.x;
  const int group = p.heads / p.kv_heads;
  const int kvh = blockIdx.y / sub_groups;
  const int h0 = (blockIdx.y % sub_groups) * HG;
  const int nh = min(HG, group - h0);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, nw = blockDim.x / kWarp;

  const int pos = p.positions[t];
  const int s = p.seq[t];
  const int n = pos + 1;
  // Keys [j_begin, j_end) of this block: all of them, or this split's share.
  int j_begin = 0, j_end = n;
  bool direct = !SPLIT;  // this block writes the normalised output itself (no partials, no merge)
  if constexpr (SPLIT) {
    // At least sp.min_keys keys per split: short contexts use the first splits only (the split count is fixed by
    // the context capacity when a graph is recorded; the rest only mark themselves empty). When split 0 holds every
    // key, it is the whole attention: it writes the output as the unsplit kernel does (the same bits as a merge of
    // one split) and the other splits return at once, touching nothing (the counters stay zero).
    const int per = max((n + sp.splits - 1) / sp.splits, sp.min_keys);
    if (per >= n) {
      if (blockIdx.z > 0) return;
      direct = true;
    }
    j_begin = min(n, int(blockIdx.z) * per);
    j_end = min(n, j_begin + per);
    if (j_begin >= j_end) {
      if (threadIdx.x < min(HG, group - h0)) {
        const int64_t row = (int64_t(t) * p.heads + kvh * group + h0 + threadIdx.x) * sp.splits + blockIdx.z;
        sp.ml[2 * row] = -INFINITY;
        sp.ml[2 * row + 1] = 0.0f;
      }
      if (splitk_last(sp.counters + int64_t(t) * gridDim.y + blockIdx.y, sp.splits))
        combine_splits<HG>(p, sp, t, kvh * group + h0, min(HG, group - h0));
      return;
    }
  }
  const int64_t k_off = p.k_off + int64_t(kvh) * p.k_off_per_kvh;
  const int64_t v_off = p.v_off + int64_t(kvh) * p.v_off_per_kvh;

  for (int i = threadIdx.x; i < HG * dk; i += blockDim.x) {
    const int hh = i / dk, d = i % dk;
    float v = 0.0f;
    if (hh < nh) {
      const int h = kvh * group + h0 + hh;
      v = d < p.d1 ? p.q1[int64_t(t) * p.q_row_stride + int64_t(h) * p.q_head_stride + d]
                   : p.q2[int64_t(t) * p.q2_row_stride + int64_t(h) * p.q2_head_stride + (d - p.d1)];
    }
    q[i] = v;
  }
  if (threadIdx.x < HG) {
    msum[threadIdx.x] = -INFINITY;
    lsum[threadIdx.x] = 0.0f;
  }
  float acc[HG][kMaxDvPerThread];
#pragma unroll
  for (int hh = 0; hh < HG; ++hh)
#pragma unroll
    for (int j = 0; j < kMaxDvPerThread; ++j) acc[hh][j] = 0.0f;
  __syncthreads();

  // Key rows read as 16-byte vectors when every row, offset and width allows it (MLA's 576 bf16, head dims of
  // 64/128): a lane issues all its loads of a key at once instead of one 2-byte load per 32 columns in a loop.
  constexpr int kVE = kVecElems<T>;
  const bool vec = dk % kVE == 0 && k_off % kVE == 0 && p.width % kVE == 0 && dk <= kMaxKeyVecs * kWarp * kVE;
  for (int j0 = j_begin; j0 < j_end; j0 += kTile) {
    // Scores: one warp per key, lanes along the key's columns, all heads of the group at once.
    for (int jj = warp; jj < kTile; jj += nw) {
      const int j = j0 + jj;
      float dot[HG];
#pragma unroll
      for (int hh = 0; hh < HG; ++hh) dot[hh] = 0.0f;
      if (j < j_end) {
        const int32_t blk = p.block_tables[int64_t(s) * p.max_blocks + j / p.block_size];
        const int64_t off = (int64_t(blk) * p.block_size + j % p.block_size) * p.width;
        if (lane == 0) rowoff[jj] = off;
        const T* kr = cache + off + k_off;
        if (vec) {
          uint4 kv4[kMaxKeyVecs];
#pragma unroll
          for (int i = 0; i < kMaxKeyVecs; ++i) {
            const int d0 = (i * kWarp + lane) * kVE;
            kv4[i] = d0 < dk ? *reinterpret_cast<const uint4*>(kr + d0) : make_uint4(0, 0, 0, 0);
          }
#pragma unroll
          for (int i = 0; i < kMaxKeyVecs; ++i) {
            const int d0 = (i * kWarp + lane) * kVE;
            if (d0 >= dk) break;
            float kf[kVE];
            unpack_vec(kv4[i], kf);
#pragma unroll
            for (int hh = 0; hh < HG; ++hh) {
              const float4* qv = reinterpret_cast<const float4*>(q + hh * dk + d0);  // 16-byte shared loads
#pragma unroll
              for (int e = 0; e < kVE; e += 4) {
                const float4 qq = qv[e / 4];
                dot[hh] = fmaf(qq.x, kf[e], dot[hh]);
                dot[hh] = fmaf(qq.y, kf[e + 1], dot[hh]);
                dot[hh] = fmaf(qq.z, kf[e + 2], dot[hh]);
                dot[hh] = fmaf(qq.w, kf[e + 3], dot[hh]);
              }
            }
          }
        } else {
          for (int d = lane; d < dk; d += kWarp) {
            const float kv = cache_value(kr, d);
#pragma unroll
            for (int hh = 0; hh < HG; ++hh) dot[hh] = fmaf(q[hh * dk + d], kv, dot[hh]);
          }
        }
      }
#pragma unroll
      for (int hh = 0; hh < HG; ++hh) {
        const float v = warp_sum(dot[hh]);
        if (lane == 0) sc[hh * kTile + jj] = (j < j_end && hh < nh) ? v * p.scale : -INFINITY;
      }
    }
    __syncthreads();
    // Online softmax bookkeeping: one warp per head.
    for (int hh = warp; hh < HG; hh += nw) {
      const float v = sc[hh * kTile + lane];  // kTile == 32: one score per lane
      const float mt = warp_max(v);
      const float m_old = msum[hh];
      const float m_new = fmaxf(m_old, mt);
      const float pv = (m_new == -INFINITY) ? 0.0f : expf(v - m_new);
      const float ps = warp_sum(pv);
      sc[hh * kTile + lane] = pv;
      if (lane == 0) {
        const float c = (m_old == -INFINITY) ? 0.0f : expf(m_old - m_new);
        corr[hh] = c;
        lsum[hh] = lsum[hh] * c + ps;
        msum[hh] = m_new;
      }
    }
    __syncthreads();
    // Values: each thread owns columns threadIdx.x + kThreads * i of every head.
    const int jn = min(kTile, j_end - j0);
#pragma unroll
    for (int hh = 0; hh < HG; ++hh)
#pragma unroll
      for (int i = 0; i < kMaxDvPerThread; ++i) acc[hh][i] *= corr[hh];
    for (int jj = 0; jj < jn; ++jj) {
      const T* vr = cache + rowoff[jj] + v_off;
#pragma unroll
      for (int i = 0; i < kMaxDvPerThread; ++i) {
        const int d = threadIdx.x + kThreads * i;
        if (d < p.dv) {
          const float vv = cache_value(vr, d);
#pragma unroll
          for (int hh = 0; hh < HG; ++hh) acc[hh][i] = fmaf(sc[hh * kTile + jj], vv, acc[hh][i]);
        }
      }
    }
    __syncthreads();  // sc and rowoff are rewritten by the next tile
  }
  if (!direct) {
    // Partial result of this split: running max and sum, and the unnormalised output (combine_splits above).
#pragma unroll
    for (int hh = 0; hh < HG; ++hh) {
      if (hh >= nh) break;
      const int h = kvh * group + h0 + hh;
      const int64_t row = (int64_t(t) * p.heads + h) * sp.splits + blockIdx.z;
      if (threadIdx.x == 0) {
        sp.ml[2 * row] = msum[hh];
        sp.ml[2 * row + 1] = lsum[hh];
      }
#pragma unroll
      for (int i = 0; i < kMaxDvPerThread; ++i) {
        const int d = threadIdx.x + kThreads * i;
        if (d < p.dv) sp.o[row * p.dv + d] = acc[hh][i];
      }
    }
    // The last split block of this (token, head group) to finish merges the splits (common.cuh, splitk_last).
    if (splitk_last(sp.counters + int64_t(t) * gridDim.y + blockIdx.y, sp.splits))
      combine_splits<HG>(p, sp, t, kvh * group + h0, nh);
  } else {
#pragma unroll
    for (int hh = 0; hh < HG; ++hh) {
      if (hh >= nh) break;
      const int h = kvh * group + h0 + hh;
      const float inv = 1.0f / lsum[hh];
#pragma unroll
      for (int i = 0; i < kMaxDvPerThread; ++i) {
        const int d = threadIdx.x + kThreads * i;
        if (d < p.dv) p.out[int64_t(t) * p.out_row_stride + int64_t(h) * p.out_head_stride + d] = acc[hh][i] * inv;
      }
    }
  }
}

template <bool SPLIT, int HG>
void launch_kind(const AttnArgs& a, const AttnSplit& sp, cudaStream_t s) {
  const int sub = (a.heads / a.kv_heads + HG - 1) / HG;
  const size_t smem = (size_t(HG) * (a.d1 + a.d2) + HG * kTile + 3 * HG) * sizeof(float);
  if (smem > 48 * 1024) {
    MMFP4_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<float, SPLIT, HG>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                     "attention: shared memory ", smem);
    MMFP4_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<uint16_t, SPLIT, HG>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                     "attention: shared memory ", smem);
  }
  const dim3 grid(unsigned(a.n_tokens), unsigned(a.kv_heads * sub), unsigned(SPLIT ? sp.splits : 1));
  if (a.cache_f32)
    MMFP4_LAUNCH(grid, kThreads, smem, s, attention_kernel<float, SPLIT, HG>)(a, sub, sp);
  else
    MMFP4_LAUNCH(grid, kThreads, smem, s, attention_kernel<uint16_t, SPLIT, HG>)(a, sub, sp);
}

// Query heads per block: 8 (each key row read once for 8 heads) unless that gives fewer than kFewBlocks blocks (decode
// of a few tokens: MLA's 20 heads are 3 blocks per token), then 2, so that more SMs share the step.
// MMFP4_CUDA_ATTN_HEADS=8 keeps 8 always (measurement only).
constexpr int kFewBlocks = 64;
int heads_per_block(const AttnArgs& a) {
  static const bool always8 = [] {
    const char* e = std::getenv("MMFP4_CUDA_ATTN_HEADS");
    return e && std::atoi(e) == 8;
  }();
  const int group = a.heads / a.kv_heads;
  if (always8) return kHeads;
  return int64_t(a.n_tokens) * a.kv_heads * ((group + kHeads - 1) / kHeads) < kFewBlocks ? 2 : kHeads;
}

}  // namespace

int attention_blocks(const AttnArgs& a) {
  const int hg = heads_per_block(a);
  return a.n_tokens * a.kv_heads * ((a.heads / a.kv_heads + hg - 1) / hg);
}

void launch_attention(const AttnArgs& a, cudaStream_t s, const AttnSplit& sp) {
  if (a.n_tokens == 0) return;
  if (a.dv > kThreads * kMaxDvPerThread) fail("attention: value width ", a.dv, " > ", kThreads * kMaxDvPerThread);
  const bool few = heads_per_block(a) == 2;
  if (sp.splits > 1) {
    few ? launch_kind<true, 2>(a, sp, s) : launch_kind<true, kHeads>(a, sp, s);
    MMFP4_CUDA_LAUNCHED("attention (split ", sp.splits, ") ", a.n_tokens, " tokens, ", a.heads, " heads / ",
                        a.kv_heads, " kv heads, key ", a.d1, " + ", a.d2, ", value ", a.dv);
    return;
  }
  few ? launch_kind<false, 2>(a, sp, s) : launch_kind<false, kHeads>(a, sp, s);
  MMFP4_CUDA_LAUNCHED("attention ", a.n_tokens, " tokens, ", a.heads, " heads / ", a.kv_heads, " kv heads, key ",
                      a.d1, " + ", a.d2, ", value ", a.dv, ", cache width ", a.width);
}

}  // namespace mmfp4::cuda
