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
// Joined value projection (AttnArgs::ev_w; MLA decode, one head per block): the block that finishes a head applies
// W_UV of the head to its output in the same launch (expand_head), instead of a launch of its own after this one.
// Staged tiles (FastPaths::attn_stage; rows and widths in 16-byte units, the tile fits shared memory): a key tile's
// rows (and value rows, unless the values are columns of the key row, as MLA's latent is) are copied into shared
// memory by the whole block at once (cp.async), so a tile costs one memory round trip instead of one per key and
// warp (block table, then key) plus the value loads; the step metadata (positions, block tables) of the first tile
// is read before the wait on the previous kernel (it is uploaded before the step starts). Same arithmetic as the
// 16-byte-vector path of the unstaged kernel.
#include <cstdlib>

#include "backend/cuda/activations.cuh"
#include "backend/cuda/check.h"
#include "core/env.h"

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

// The joined value projection (AttnArgs::ev_w). The block that finishes head h of token t has the head's output o
// [dv] in shared memory (ev_smem); it stages o as hi + lo bf16 scaled by kRawActScale (as the decode GEMV stages its
// input), and each warp takes 16-row tiles warp, warp + 8, .. of W_h, a tile's chunks loaded kEvBatch at a time,
// with the one-token kernel's paired columns (paired_chunk_pair). The head's blocks prefetched W_h into L2
// (prefetch_ev: before their wait in the staged kernel, right after it in the other). The same products as
// mla_expand_v's own launch, summed in another order.
constexpr int kEvBatch = 8;  // chunks in flight per warp
__device__ __forceinline__ float* ev_smem(const AttnArgs& p) {
  MMFP4_DYN_SMEM(float, smem);
  return smem + p.ev_off;
}
int64_t ev_bytes(const AttnArgs& a) {  // o [dv] (rounded to 16 bytes), then hi [L + 32] and lo [L] bf16
  if (!a.ev_w.data) return 0;
  const int64_t L = int64_t(a.ev_w.k_chunks) * 64;
  return int64_t((a.dv + 3) / 4 * 4) * 4 + 2 * (2 * L + 32);
}

__device__ __forceinline__ void expand_head(const AttnArgs& p, int t, int h) {
  const GemmWeight& w = p.ev_w;
  const int kce = w.k_chunks, L = kce * 64, lo_off = L + 32;
  const float* o = ev_smem(p);
  uint16_t* st = reinterpret_cast<uint16_t*>(ev_smem(p) + (p.dv + 3) / 4 * 4);
  for (int q = int(threadIdx.x); q < L / 8; q += int(blockDim.x)) {
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = 8 * q + j < p.dv ? o[8 * q + j] : 0.0f;
    stage_raw8(v, st + 8 * q, st + lo_off + 8 * q);
  }
  __syncthreads();
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp, g = lane >> 2, c = lane & 3;
  int gshift = 0;
  while ((32 << gshift) < w.group_size) ++gshift;
  const int cshift = gshift - 1;  // a chunk pair shares one scale (groups >= 128 columns)
  const uint16_t* xrow = st + ((g & 1) ? lo_off : 0) + 8 * c;
  const uint4* wh = static_cast<const uint4*>(w.data) + h * w.expert_stride + lane;
  const uint32_t* sh = w.scales + h * w.expert_scale_stride + g;
  float* out = p.ev_out + int64_t(t) * p.ev_row_stride + int64_t(h) * p.ev_head_stride;
  for (int nt = warp; nt < w.n_tiles; nt += int(blockDim.x) / kWarp) {
    float acc[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}};
    for (int k0 = 0; k0 < kce; k0 += kEvBatch) {
      uint4 wv[kEvBatch];
      uint32_t sw[kEvBatch / 2];
#pragma unroll
      for (int j = 0; j < kEvBatch; ++j)
        if (k0 + j < kce) wv[j] = ld_stream(wh + (int64_t(nt) * kce + k0 + j) * kWarp);
#pragma unroll
      for (int j = 0; j < kEvBatch; j += 2)
        if (k0 + j < kce) sw[j / 2] = __ldg(sh + int64_t(nt) * w.groups * 8 + ((k0 + j) >> cshift) * 8);
#pragma unroll
      for (int j = 0; j < kEvBatch; j += 2)
        if (k0 + j < kce) paired_chunk_pair(acc, wv[j], wv[j + 1], sw[j / 2], xrow + 2 * (k0 + j) * 32);
    }
    // Column pair 0's lanes hold rows g and g + 8: the hi column plus the lo column.
    const int r = nt * 16 + g;
    if (c == 0 && r < w.n) out[r] = (acc[0][0] + acc[0][1]) * kRawOutScale;
    if (c == 0 && r + 8 < w.n) out[r + 8] = (acc[0][2] + acc[0][3]) * kRawOutScale;
  }
}

// Before the wait: head h's W_UV lines into L2, spread over the head's split blocks, and its scales.
__device__ __forceinline__ void prefetch_ev(const AttnArgs& p, int h) {
  const GemmWeight& w = p.ev_w;
  const char* wb = reinterpret_cast<const char*>(static_cast<const uint4*>(w.data) + h * w.expert_stride);
  const int64_t lines = int64_t(w.n_tiles) * w.k_chunks * 4;  // 512 bytes a chunk of a tile
  const int64_t step = int64_t(gridDim.z) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.z) * blockDim.x + threadIdx.x; i < lines; i += step) prefetch_l2(wb + i * 128);
  if (blockIdx.z == 0) {
    const char* sb = reinterpret_cast<const char*>(w.scales + h * w.expert_scale_stride);
    const int64_t bytes = int64_t(w.n_tiles) * w.groups * 8 * 4;
    for (int64_t i = threadIdx.x; i * 128 < bytes + 128; i += blockDim.x) prefetch_l2(sb + i * 128);
  }
}

// After the head's output is final (and in ev_smem): its value projection, by the whole block.
template <bool EV>
__device__ __forceinline__ void expand_after(const AttnArgs& p, int t, int h) {
  if constexpr (EV) {
    __syncthreads();
    expand_head(p, t, h);
  }
}

// The merge of a (token, head group)'s splits by its last block: out[t, h] = sum_s w_s o_s / sum_s w_s l_s with
// w_s = exp(m_s - max_s m_s), splits in order. A split that saw no key has m_s = -inf and weight 0, and its output
// was never written nor is it read (split 0 always sees key 0). The weights are computed once per head; the
// (head, column) outputs are spread over the block. Reads through L2: other blocks wrote the partials.
template <int HG, bool EV>
__device__ void combine_splits(const AttnArgs& p, const AttnSplit& sp, int t, int hfirst, int nh) {
  __shared__ float ml[HG][kMaxSplits][2];
  __shared__ float wts[HG][kMaxSplits];
  __shared__ float inv_l[HG];
  __shared__ int used[HG];
  // Every (head, split)'s max and sum in one round trip (a thread each), then the weights per head from shared memory.
  for (int i = threadIdx.x; i < nh * sp.splits; i += blockDim.x) {
    const int hh = i / sp.splits, s = i % sp.splits;
    const int64_t row = (int64_t(t) * p.heads + hfirst + hh) * sp.splits + s;
    ml[hh][s][0] = __ldcg(sp.ml + 2 * row);
    ml[hh][s][1] = __ldcg(sp.ml + 2 * row + 1);
  }
  __syncthreads();
  if (threadIdx.x < nh) {
    const int hh = threadIdx.x;
    float mx = -INFINITY;
    for (int s = 0; s < sp.splits; ++s) mx = fmaxf(mx, ml[hh][s][0]);
    float l = 0.0f;
    int u = 0;
    for (int s = 0; s < sp.splits; ++s) {
      const float m = ml[hh][s][0];
      const float w = m == -INFINITY ? 0.0f : expf(m - mx);
      wts[hh][s] = w;
      if (w != 0.0f) u = s + 1;
      l = fmaf(w, ml[hh][s][1], l);
    }
    inv_l[hh] = 1.0f / l;
    used[hh] = u;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < nh * p.dv; idx += blockDim.x) {
    const int hh = idx / p.dv, d = idx % p.dv;
    const int64_t row0 = (int64_t(t) * p.heads + hfirst + hh) * sp.splits;
    // All splits' values loaded before the sum (independent loads, one round trip), added in split order.
    float v[kMaxSplits];
#pragma unroll
    for (int s = 0; s < kMaxSplits; ++s)
      v[s] = (s < used[hh] && wts[hh][s] != 0.0f) ? __ldcg(sp.o + (row0 + s) * p.dv + d) : 0.0f;
    float o = 0.0f;
#pragma unroll
    for (int s = 0; s < kMaxSplits; ++s)
      if (s < used[hh] && wts[hh][s] != 0.0f) o = fmaf(wts[hh][s], v[s], o);
    p.out[int64_t(t) * p.out_row_stride + int64_t(hfirst + hh) * p.out_head_stride + d] = o * inv_l[hh];
    if constexpr (EV) ev_smem(p)[d] = o * inv_l[hh];
  }
}

// The shared memory both kernels start with: q [HG][dk], scores then probabilities sc [HG][kTile], and per head the
// rescale of the running sums, the running max and the running denominator.
template <int HG>
__device__ __forceinline__ void head_smem(float* smem, int dk, float*& q, float*& sc, float*& corr, float*& msum,
                                          float*& lsum) {
  q = smem;
  sc = q + HG * dk;
  corr = sc + HG * kTile;
  msum = corr + HG;
  lsum = msum + HG;
}

// Pieces both kernels share. A block's place: token t, kv head kvh, query heads [h0, h0 + nh) of its group.
struct BlockPlace {
  int t, group, kvh, h0, nh;
};
__device__ __forceinline__ BlockPlace block_place(const AttnArgs& p, int sub_groups, int hg) {
  BlockPlace b;
  b.t = blockIdx.x;
  b.group = p.heads / p.kv_heads;
  b.kvh = blockIdx.y / sub_groups;
  b.h0 = (blockIdx.y % sub_groups) * hg;
  b.nh = min(hg, b.group - b.h0);
  return b;
}

// This split's keys [j_begin, j_end) of n = pos + 1: at least sp.min_keys keys per split, so short contexts use the
// first splits only (the split count is fixed by the context capacity when a graph is recorded; the rest only mark
// themselves empty). When split 0 holds every key it is the whole attention: it writes the output as the unsplit
// kernel does (the same bits as a merge of one split; direct) and the other splits return at once, touching nothing
// (the counters stay zero): false.
__device__ __forceinline__ bool split_range(const AttnSplit& sp, int n, int& j_begin, int& j_end, bool& direct) {
  const int per = max((n + sp.splits - 1) / sp.splits, sp.min_keys);
  if (per >= n) {
    if (blockIdx.z > 0) return false;
    direct = true;
  }
  j_begin = min(n, int(blockIdx.z) * per);
  j_end = min(n, j_begin + per);
  return true;
}

// A split that saw no key: marks itself empty (weight 0 in the merge) and counts itself.
template <int HG, bool EV>
__device__ void empty_split(const AttnArgs& p, const AttnSplit& sp, const BlockPlace& b) {
  if (threadIdx.x < b.nh) {
    const int64_t row = (int64_t(b.t) * p.heads + b.kvh * b.group + b.h0 + threadIdx.x) * sp.splits + blockIdx.z;
    sp.ml[2 * row] = -INFINITY;
    sp.ml[2 * row + 1] = 0.0f;
  }
  if (splitk_last(sp.counters + int64_t(b.t) * gridDim.y + blockIdx.y, sp.splits)) {
    combine_splits<HG, EV>(p, sp, b.t, b.kvh * b.group + b.h0, b.nh);
    expand_after<EV>(p, b.t, b.kvh * b.group + b.h0);
  }
}

// q [HG][dk] of the block's heads (zeros past nh) into shared memory; the running max and sum start empty.
template <int HG>
__device__ void load_q(const AttnArgs& p, const BlockPlace& b, float* q, float* msum, float* lsum) {
  const int dk = p.d1 + p.d2;
  for (int i = threadIdx.x; i < HG * dk; i += blockDim.x) {
    const int hh = i / dk, d = i % dk;
    float v = 0.0f;
    if (hh < b.nh) {
      const int h = b.kvh * b.group + b.h0 + hh;
      v = d < p.d1 ? p.q1[int64_t(b.t) * p.q_row_stride + int64_t(h) * p.q_head_stride + d]
                   : p.q2[int64_t(b.t) * p.q2_row_stride + int64_t(h) * p.q2_head_stride + (d - p.d1)];
    }
    q[i] = v;
  }
  if (threadIdx.x < HG) {
    msum[threadIdx.x] = -INFINITY;
    lsum[threadIdx.x] = 0.0f;
  }
}

// Online softmax bookkeeping of a tile's scores sc [HG][kTile]: one warp per head; scores become probabilities,
// corr the rescale of the running sums.
template <int HG>
__device__ void softmax_tile(float* sc, float* corr, float* msum, float* lsum) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, nw = blockDim.x / kWarp;
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
}

// The block's result: normalised output (direct), or this split's partial (running max, sum and unnormalised
// output), the last split block of the (token, head group) merging them (combine_splits).
template <int HG, bool EV>
__device__ void finish(const AttnArgs& p, const AttnSplit& sp, const BlockPlace& b, bool direct,
                       const float (&acc)[HG][kMaxDvPerThread], const float* msum, const float* lsum) {
#pragma unroll
  for (int hh = 0; hh < HG; ++hh) {
    if (hh >= b.nh) break;
    const int h = b.kvh * b.group + b.h0 + hh;
    if (direct) {
      const float inv = 1.0f / lsum[hh];
#pragma unroll
      for (int i = 0; i < kMaxDvPerThread; ++i) {
        const int d = threadIdx.x + kThreads * i;
        if (d < p.dv) {
          p.out[int64_t(b.t) * p.out_row_stride + int64_t(h) * p.out_head_stride + d] = acc[hh][i] * inv;
          if constexpr (EV) ev_smem(p)[d] = acc[hh][i] * inv;
        }
      }
      continue;
    }
    const int64_t row = (int64_t(b.t) * p.heads + h) * sp.splits + blockIdx.z;
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
  if (direct) {
    expand_after<EV>(p, b.t, b.kvh * b.group + b.h0);
  } else if (splitk_last(sp.counters + int64_t(b.t) * gridDim.y + blockIdx.y, sp.splits)) {
    combine_splits<HG, EV>(p, sp, b.t, b.kvh * b.group + b.h0, b.nh);
    expand_after<EV>(p, b.t, b.kvh * b.group + b.h0);
  }
}

// dot[hh] += q[hh][d0 .. d0 + kVE) . the kVE key values of one 16-byte vector (q in shared memory, 16-byte loads).
template <typename T, int HG>
__device__ __forceinline__ void dot_vec(const uint4& kv, const float* q, int dk, int d0, float (&dot)[HG]) {
  constexpr int kVE = kVecElems<T>;
  float kf[kVE];
  unpack_vec(kv, kf);
#pragma unroll
  for (int hh = 0; hh < HG; ++hh) {
    const float4* qv = reinterpret_cast<const float4*>(q + hh * dk + d0);
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

// acc[hh][i] (columns threadIdx.x + kThreads i) = corr[hh] acc + sum over the tile's jn keys of p[hh][jj] v_jj; value
// row jj at vbase + rowoff(jj) (global rows) or vbase + jj * vstride (staged rows).
template <typename T, int HG>
__device__ __forceinline__ void accumulate_values(float (&acc)[HG][kMaxDvPerThread], const float* sc, const float* corr,
                                                  const T* vbase, const int64_t* rowoff, int64_t vstride, int jn,
                                                  int dv) {
#pragma unroll
  for (int hh = 0; hh < HG; ++hh)
#pragma unroll
    for (int i = 0; i < kMaxDvPerThread; ++i) acc[hh][i] *= corr[hh];
  for (int jj = 0; jj < jn; ++jj) {
    const T* vr = vbase + (rowoff ? rowoff[jj] : jj * vstride);
#pragma unroll
    for (int i = 0; i < kMaxDvPerThread; ++i) {
      const int d = threadIdx.x + kThreads * i;
      if (d < dv) {
        const float vv = cache_value(vr, d);
#pragma unroll
        for (int hh = 0; hh < HG; ++hh) acc[hh][i] = fmaf(sc[hh * kTile + jj], vv, acc[hh][i]);
      }
    }
  }
}

template <typename T, bool SPLIT, int HG, bool EV>
__global__ void __launch_bounds__(kThreads) attention_kernel(AttnArgs p, int sub_groups, AttnSplit sp) {
  static_assert(!EV || HG == 1, "the joined value projection: one head per block");
  pdl_enter();
  const T* cache = static_cast<const T*>(p.cache);
  MMFP4_DYN_SMEM(float, smem);
  const int dk = p.d1 + p.d2;
  float *q, *sc, *corr, *msum, *lsum;
  head_smem<HG>(smem, dk, q, sc, corr, msum, lsum);
  __shared__ int64_t rowoff[kTile];

  const BlockPlace b = block_place(p, sub_groups, HG);
  const int t = b.t, kvh = b.kvh, nh = b.nh;
  if constexpr (EV) prefetch_ev(p, b.kvh * b.group + b.h0);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, nw = blockDim.x / kWarp;

  const int pos = p.positions[t];
  const int s = p.seq[t];
  const int n = pos + 1;
  // Keys [j_begin, j_end) of this block: all of them, or this split's share.
  int j_begin = 0, j_end = n;
  bool direct = !SPLIT;  // this block writes the normalised output itself (no partials, no merge)
  if constexpr (SPLIT) {
    if (!split_range(sp, n, j_begin, j_end, direct)) return;
    if (j_begin >= j_end) {
      empty_split<HG, EV>(p, sp, b);
      return;
    }
  }
  const int64_t k_off = p.k_off + int64_t(kvh) * p.k_off_per_kvh;
  const int64_t v_off = p.v_off + int64_t(kvh) * p.v_off_per_kvh;

  load_q<HG>(p, b, q, msum, lsum);
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
            dot_vec<T, HG>(kv4[i], q, dk, d0, dot);
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
    softmax_tile<HG>(sc, corr, msum, lsum);
    __syncthreads();
    // Values: each thread owns columns threadIdx.x + kThreads * i of every head.
    accumulate_values<T, HG>(acc, sc, corr, cache + v_off, rowoff, 0, min(kTile, j_end - j0), p.dv);
    __syncthreads();  // sc and rowoff are rewritten by the next tile
  }
  finish<HG, EV>(p, sp, b, direct, acc, msum, lsum);
}

// Shared memory of the staged kernel: the unstaged layout (q, scores, softmax state) rounded to 16 bytes, then
// the key tile [kTile][dk] and, when the values are not inside the key rows, the value tile [kTile][dv].
struct StagedLayout {
  int head_floats = 0;  // q + sc + corr/msum/lsum, rounded up to 4 floats
  int64_t bytes = 0;
  bool v_in_k = false;
};
template <typename T>
StagedLayout staged_layout(const AttnArgs& a, int hg) {
  StagedLayout l;
  const int dk = a.d1 + a.d2;
  l.head_floats = (hg * dk + hg * kTile + 3 * hg + 3) / 4 * 4;
  l.v_in_k = a.kv_heads == 1 && a.v_off >= a.k_off && a.v_off + a.dv <= a.k_off + dk;
  l.bytes = int64_t(l.head_floats) * 4 + int64_t(kTile) * dk * int64_t(sizeof(T)) +
            (l.v_in_k ? 0 : int64_t(kTile) * a.dv * int64_t(sizeof(T)));
  return l;
}

template <typename T, bool SPLIT, int HG, bool EV>
__global__ void __launch_bounds__(kThreads) attention_staged_kernel(AttnArgs p, int sub_groups, AttnSplit sp,
                                                                    int head_floats, int v_in_k) {
  constexpr int kVE = kVecElems<T>;
  MMFP4_DYN_SMEM(float, smem);
  const int dk = p.d1 + p.d2;
  float *q, *sc, *corr, *msum, *lsum;
  head_smem<HG>(smem, dk, q, sc, corr, msum, lsum);
  T* sk = reinterpret_cast<T*>(smem + head_floats);  // [kTile][dk] key rows of the tile
  T* sv = sk + kTile * dk;                           // [kTile][dv] value rows (unless inside the key rows)
  __shared__ int64_t rowoff[kTile];

  const BlockPlace b = block_place(p, sub_groups, HG);
  if constexpr (EV) prefetch_ev(p, b.kvh * b.group + b.h0);  // weights: no wait needed
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, nw = blockDim.x / kWarp;
  const int64_t k_off = p.k_off + int64_t(b.kvh) * p.k_off_per_kvh;
  const int64_t v_off = p.v_off + int64_t(b.kvh) * p.v_off_per_kvh;

  // Before the wait: positions, sequences and block tables are the step's inputs (uploaded, synchronously, before
  // its first kernel); nothing earlier in the step writes them. Nothing is written to global memory here.
  const int n = p.positions[b.t] + 1, s = p.seq[b.t];
  int j_begin = 0, j_end = n;
  bool direct = !SPLIT;
  if constexpr (SPLIT)
    if (!split_range(sp, n, j_begin, j_end, direct)) return;
  auto row_offsets = [&](int j0) {
    const int j = j0 + int(threadIdx.x);
    if (threadIdx.x < kTile && j < j_end) {
      const int32_t blk = p.block_tables[int64_t(s) * p.max_blocks + j / p.block_size];
      rowoff[threadIdx.x] = (int64_t(blk) * p.block_size + j % p.block_size) * p.width;
    }
  };
  if (j_begin < j_end) row_offsets(j_begin);
  pdl_enter();
  if constexpr (SPLIT) {
    if (j_begin >= j_end) {
      empty_split<HG, EV>(p, sp, b);
      return;
    }
  }
  const T* cache = static_cast<const T*>(p.cache);
  const int kvec = dk / kVE, vvec = p.dv / kVE;  // 16-byte vectors per key / value row
  // The tile's rows -> shared memory (rowoff must be visible: a barrier before), one commit group.
  auto stage = [&](int jn) {
    for (int i = threadIdx.x; i < jn * kvec; i += blockDim.x) {
      const int jj = i / kvec, v = i - jj * kvec;
      cp_async16(sk + jj * dk + v * kVE, cache + rowoff[jj] + k_off + v * kVE);
    }
    if (!v_in_k)
      for (int i = threadIdx.x; i < jn * vvec; i += blockDim.x) {
        const int jj = i / vvec, v = i - jj * vvec;
        cp_async16(sv + jj * p.dv + v * kVE, cache + rowoff[jj] + v_off + v * kVE);
      }
    cp_async_commit();
  };
  __syncthreads();
  stage(min(kTile, j_end - j_begin));  // in flight while q is loaded
  load_q<HG>(p, b, q, msum, lsum);
  float acc[HG][kMaxDvPerThread];
#pragma unroll
  for (int hh = 0; hh < HG; ++hh)
#pragma unroll
    for (int j = 0; j < kMaxDvPerThread; ++j) acc[hh][j] = 0.0f;

  for (int j0 = j_begin; j0 < j_end; j0 += kTile) {
    const int jn = min(kTile, j_end - j0);
    if (j0 != j_begin) {
      __syncthreads();  // the previous tile's rows and offsets are no longer read
      row_offsets(j0);
      __syncthreads();
      stage(jn);
    }
    cp_async_wait<0>();
    __syncthreads();
    // Scores: one warp per key, lanes along the key's 16-byte vectors, all heads of the group at once.
    for (int jj = warp; jj < kTile; jj += nw) {
      float dot[HG];
#pragma unroll
      for (int hh = 0; hh < HG; ++hh) dot[hh] = 0.0f;
      if (jj < jn)
        for (int v = lane; v < kvec; v += kWarp)
          dot_vec<T, HG>(*reinterpret_cast<const uint4*>(sk + jj * dk + v * kVE), q, dk, v * kVE, dot);
#pragma unroll
      for (int hh = 0; hh < HG; ++hh) {
        const float v = warp_sum(dot[hh]);
        if (lane == 0) sc[hh * kTile + jj] = (jj < jn && hh < b.nh) ? v * p.scale : -INFINITY;
      }
    }
    __syncthreads();
    softmax_tile<HG>(sc, corr, msum, lsum);
    __syncthreads();
    accumulate_values<T, HG>(acc, sc, corr, v_in_k ? sk + (v_off - k_off) : sv, nullptr, v_in_k ? dk : p.dv, jn,
                             p.dv);
  }
  finish<HG, EV>(p, sp, b, direct, acc, msum, lsum);
}

// The staged kernel takes the launch: 16-byte rows and offsets, and a tile that fits kStagedMaxBytes.
constexpr int64_t kStagedMaxBytes = 160 * 1024;
template <typename T, bool SPLIT, int HG, bool EV>
bool launch_staged(const AttnArgs& a, const AttnSplit& sp, int sub, cudaStream_t s) {
  constexpr int kVE = kVecElems<T>;
  const int dk = a.d1 + a.d2;
  const StagedLayout l = staged_layout<T>(a, HG);
  const bool aligned = dk % kVE == 0 && a.dv % kVE == 0 && a.width % kVE == 0 && a.k_off % kVE == 0 &&
                       a.v_off % kVE == 0 && a.k_off_per_kvh % kVE == 0 && a.v_off_per_kvh % kVE == 0 &&
                       reinterpret_cast<uintptr_t>(a.cache) % 16 == 0;
  if (!aligned || l.bytes > kStagedMaxBytes) return false;
  AttnArgs p = a;
  p.ev_off = int((l.bytes + 15) / 16 * 4);
  const int64_t bytes = int64_t(p.ev_off) * 4 + ev_bytes(a);
  if (bytes > 48 * 1024)
    MMFP4_CUDA_CHECK(cudaFuncSetAttribute(attention_staged_kernel<T, SPLIT, HG, EV>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
                     "attention (staged): shared memory ", bytes);
  const dim3 grid(unsigned(a.n_tokens), unsigned(a.kv_heads * sub), unsigned(SPLIT ? sp.splits : 1));
  MMFP4_LAUNCH(grid, kThreads, size_t(bytes), s, attention_staged_kernel<T, SPLIT, HG, EV>)(p, sub, sp, l.head_floats,
                                                                                      int(l.v_in_k));
  return true;
}

template <bool SPLIT, int HG, bool EV = false>
void launch_kind(const AttnArgs& a, const AttnSplit& sp, cudaStream_t s, bool staged) {
  const int sub = (a.heads / a.kv_heads + HG - 1) / HG;
  if (staged && (a.cache_f32 ? launch_staged<float, SPLIT, HG, EV>(a, sp, sub, s)
                             : launch_staged<uint16_t, SPLIT, HG, EV>(a, sp, sub, s)))
    return;
  AttnArgs p = a;
  p.ev_off = int(((size_t(HG) * (a.d1 + a.d2) + HG * kTile + 3 * HG) + 3) / 4 * 4);
  const size_t smem = size_t(p.ev_off) * sizeof(float) + size_t(ev_bytes(a));
  if (smem > 48 * 1024) {
    MMFP4_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<float, SPLIT, HG, EV>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                     "attention: shared memory ", smem);
    MMFP4_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<uint16_t, SPLIT, HG, EV>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                     "attention: shared memory ", smem);
  }
  const dim3 grid(unsigned(a.n_tokens), unsigned(a.kv_heads * sub), unsigned(SPLIT ? sp.splits : 1));
  if (a.cache_f32)
    MMFP4_LAUNCH(grid, kThreads, smem, s, attention_kernel<float, SPLIT, HG, EV>)(p, sub, sp);
  else
    MMFP4_LAUNCH(grid, kThreads, smem, s, attention_kernel<uint16_t, SPLIT, HG, EV>)(p, sub, sp);
}

// Query heads per block: 8 (each key row read once for 8 heads) unless that gives fewer than kFewBlocks blocks (decode
// of a few tokens: MLA's 20 heads are 3 blocks per token), then 1, so that more SMs share the step: a block's time
// follows its heads' serial work, not the key rows it reads (L2). H100, GLM-4.7-Flash decode batch 1: 2 heads per
// block (the default before 2026-11-26, fifth session) -> 1: +1..+5%, bench/results/cuda-ab-decode-a3d9a21.txt.
// One key/value stream for all heads (MLA, MQA) with many blocks: 2 instead of 8. H100, GLM-4.7-Flash decode batch 64:
// +5.5% at a 33-token context, +10.7% at 2,080; batch 32 +1.4% (bench/results/cuda-ab-session8-7d28238.txt, part 7).
// GQA groups keep 8 (not measured).
// MMFP4_CUDA_ATTN_HEADS=1, 2 or 8 takes that many for every launch (measurement only).
constexpr int kFewBlocks = 64;
int heads_per_block(const AttnArgs& a) {
  static const int forced = [] {
    const auto v = env_choice("MMFP4_CUDA_ATTN_HEADS", {"1", "2", "8"});
    return v ? std::atoi(v->c_str()) : 0;
  }();
  if (forced) return forced;
  const int group = a.heads / a.kv_heads;
  if (int64_t(a.n_tokens) * a.kv_heads * ((group + kHeads - 1) / kHeads) >= kFewBlocks)
    return a.kv_heads == 1 ? 2 : kHeads;
  return 1;
}

}  // namespace

bool attention_expand_ok(const AttnArgs& a, const GemmWeight& w) {
  const int G = w.group_size;
  return w.kind == WKind::Fp4 && w.layout == 2 && w.k_chunks % 2 == 0 && w.k_chunks * 64 >= a.dv && G >= 128 &&
         (G & (G - 1)) == 0 && a.kv_heads == 1 && heads_per_block(a) == 1 && a.dv <= kThreads * kMaxDvPerThread;
}

int attention_blocks(const AttnArgs& a) {
  const int hg = heads_per_block(a);
  return a.n_tokens * a.kv_heads * ((a.heads / a.kv_heads + hg - 1) / hg);
}

void launch_attention(const AttnArgs& a, cudaStream_t s, const AttnSplit& sp, bool staged) {
  if (a.n_tokens == 0) return;
  if (a.dv > kThreads * kMaxDvPerThread) fail("attention: value width ", a.dv, " > ", kThreads * kMaxDvPerThread);
  if (a.ev_w.data && !attention_expand_ok(a, a.ev_w))
    fail("attention: the joined value projection needs one head per block and a layout-2 MMFP4 W_UV");
  const int hg = heads_per_block(a);
  if (sp.splits > 1) {
    a.ev_w.data ? launch_kind<true, 1, true>(a, sp, s, staged)
    : hg == 1   ? launch_kind<true, 1>(a, sp, s, staged)
    : hg == 2 ? launch_kind<true, 2>(a, sp, s, staged)
              : launch_kind<true, kHeads>(a, sp, s, staged);
    MMFP4_CUDA_LAUNCHED("attention (split ", sp.splits, ") ", a.n_tokens, " tokens, ", a.heads, " heads / ",
                        a.kv_heads, " kv heads, key ", a.d1, " + ", a.d2, ", value ", a.dv);
    return;
  }
  a.ev_w.data ? launch_kind<false, 1, true>(a, sp, s, staged)
  : hg == 1   ? launch_kind<false, 1>(a, sp, s, staged)
  : hg == 2 ? launch_kind<false, 2>(a, sp, s, staged)
            : launch_kind<false, kHeads>(a, sp, s, staged);
  MMFP4_CUDA_LAUNCHED("attention ", a.n_tokens, " tokens, ", a.heads, " heads / ", a.kv_heads, " kv heads, key ",
                      a.d1, " + ", a.d2, ", value ", a.dv, ", cache width ", a.width);
}

}  // namespace mmfp4::cuda
