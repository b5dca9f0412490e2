// Causal attention over the paged cache on tensor cores, for long prefill batches (FastPaths::flash): the SIMT kernel
// of attention.cu spends ~1 shared-memory load per FMA and runs one (token, group of 8 heads) per block, which at
// 2,048 tokens of GLM-4.7-Flash is ~7 ms per layer. Here a block owns 64 query rows = (token, head) pairs of up to
// 64 / G tokens of one sequence (G query heads per kv head; MLA: 3 tokens x 20 heads), so every key and value row
// read from the cache serves 60-64 rows, and the products run as mma.m16n8k16:
//   * Q (64 rows x dk) and each tile of 32 keys (32 x dk; values are a column range of it for MLA, else a second
//     tile) sit in shared memory as bf16 hi + lo halves (x = hi + lo to ~2^-17); rows padded by 16 bytes, so the
//     ldmatrix phases hit 32 distinct banks;
//   * S = Q K^T as Qh Kh + Ql Kh + Qh Kl (three mma per step: float32-level scores, as the cache is float32),
//     then masking (key <= the row's position), scale, and the online softmax in float32 per row (the 4 lanes of a
//     row combine by shuffles); P = exp(S - m) stays in registers, split into hi + lo, as the A operand of P V;
//   * warp (wm, wd) owns rows 16 wm .. + 15 and half of the value columns (16 x dv / 2 accumulators per warp), so
//     the two warps of a row tile compute the same S (identical bits) and need no exchange.
// Block list (tokens of one sequence, consecutive in the batch) by a one-thread plan kernel: no host round trip.
#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kRows = 64;  // query rows per block
constexpr int kKeys = 32;  // keys per tile
constexpr int kPad = 8;    // bf16 padding per shared-memory row (16 bytes)

__device__ __forceinline__ float cache_at(const float* c, int64_t i) { return c[i]; }
__device__ __forceinline__ float cache_at(const uint16_t* c, int64_t i) { return bf16_bits_to_f32(c[i]); }

// hi = bf16(x), lo = bf16(x - hi)
__device__ __forceinline__ void split_bf16(float x, uint16_t& hi, uint16_t& lo) {
  const __nv_bfloat16 h = __float2bfloat16_rn(x);
  hi = *reinterpret_cast<const uint16_t*>(&h);
  const __nv_bfloat16 l = __float2bfloat16_rn(x - __bfloat162float(h));
  lo = *reinterpret_cast<const uint16_t*>(&l);
}

// Four consecutive cache elements as floats (16-byte f32 or 8-byte bf16 loads; the caller checks alignment).
__device__ __forceinline__ void load4(const float* p, float (&x)[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
}
__device__ __forceinline__ void load4(const uint16_t* p, float (&x)[4]) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  x[0] = __uint_as_float(v.x << 16), x[1] = __uint_as_float(v.x & 0xffff0000u);
  x[2] = __uint_as_float(v.y << 16), x[3] = __uint_as_float(v.y & 0xffff0000u);
}

// One tile of kKeys cache rows -> bf16 hi/lo rows in shared memory: element d of row jj is
// cache[row_off[jj] + base + d] for d < n (zero for d in [n, n_pad) and for rows with row_off < 0). A warp per row,
// lanes over 4-column groups: 16-byte loads and 8-byte stores, no division per element (the old element loop spent
// most of a tile's time in index arithmetic). `vec`: base and every row offset are multiples of 4 elements.
template <typename T>
__device__ __forceinline__ void load_tile_split(const T* cache, const int64_t* row_off, int64_t base, int n, int n_pad,
                                                bool vec, uint16_t* hi, uint16_t* lo, int stride) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, nw = blockDim.x / kWarp;
  for (int jj = warp; jj < kKeys; jj += nw) {
    const int64_t off = row_off[jj];
    const T* src = cache + off + base;
#pragma unroll 2
    for (int d = 4 * lane; d < n_pad; d += 4 * kWarp) {
      float x[4];
      if (off >= 0 && vec && d + 4 <= n) {
        load4(src + d, x);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) x[e] = (off >= 0 && d + e < n) ? cache_at(src, d + e) : 0.0f;
      }
      uint16_t h[4], l[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) split_bf16(x[e], h[e], l[e]);
      *reinterpret_cast<uint2*>(hi + jj * stride + d) = make_uint2(h[0] | uint32_t(h[1]) << 16, h[2] | uint32_t(h[3]) << 16);
      *reinterpret_cast<uint2*>(lo + jj * stride + d) = make_uint2(l[0] | uint32_t(l[1]) << 16, l[2] | uint32_t(l[3]) << 16);
    }
  }
}

// Query blocks: runs of consecutive tokens of one sequence, cut every `tq` tokens. blocks[2i] = first token,
// blocks[2i + 1] = tokens; *count blocks.
__global__ void tc_plan_kernel(const int32_t* seq, int T, int tq, int32_t* blocks, int32_t* count) {
  pdl_enter();
  if (threadIdx.x != 0) return;
  int n = 0;
  for (int t = 0; t < T;) {
    int e = t + 1;
    while (e < T && e - t < tq && seq[e] == seq[t]) ++e;
    blocks[2 * n] = t;
    blocks[2 * n + 1] = e - t;
    ++n;
    t = e;
  }
  *count = n;
}

template <int NDV, typename T>
__global__ void __launch_bounds__(256, 1) attention_tc_kernel(AttnArgs p, AttnTc tc) {
  pdl_enter();
  const T* cache = static_cast<const T*>(p.cache);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane >> 2, c = lane & 3;
  const int wm = warp & 3, wd = warp >> 2;
  if (int(blockIdx.x) >= *tc.count) return;
  const int t0 = tc.blocks[2 * blockIdx.x], ntok = tc.blocks[2 * blockIdx.x + 1];
  const int group = p.heads / p.kv_heads, kvh = blockIdx.y / tc.head_blocks;
  const int h0 = (blockIdx.y % tc.head_blocks) * tc.hb;
  const int dk = p.d1 + p.d2, QS = tc.dk_pad + kPad, VS = tc.dv_pad + kPad;

  MMFP4_DYN_SMEM(uint8_t, smem);
  uint16_t* qh = reinterpret_cast<uint16_t*>(smem);
  uint16_t* ql = qh + kRows * QS;
  uint16_t* kh = ql + kRows * QS;
  uint16_t* kl = kh + kKeys * QS;
  uint16_t* vh = tc.v_in_k ? kh : kl + kKeys * QS;  // values: a column range of the key tile (MLA) or their own
  uint16_t* vl = tc.v_in_k ? kl : vh + kKeys * VS;
  const int vcol = tc.v_in_k ? tc.v_col : 0, vstride = tc.v_in_k ? QS : VS;
  int* row_pos = reinterpret_cast<int*>(tc.v_in_k ? kl + kKeys * QS : vl + kKeys * VS);  // [kRows], -1: padding
  int* row_tok = row_pos + kRows;                                                         // [kRows]
  int64_t* key_off = reinterpret_cast<int64_t*>(row_tok + kRows);                          // [kKeys]
  __shared__ int n_keys;

  const int s = p.seq[t0];
  const int64_t k_base = p.k_off + int64_t(kvh) * p.k_off_per_kvh;
  const int64_t v_base = p.v_off + int64_t(kvh) * p.v_off_per_kvh;
  const bool vec_k = p.width % 4 == 0 && k_base % 4 == 0, vec_v = p.width % 4 == 0 && v_base % 4 == 0;
  if (threadIdx.x == 0) n_keys = 0;
  __syncthreads();
  if (threadIdx.x < kRows) {
    const int r = threadIdx.x, ti = r / tc.hb, hi = r % tc.hb;
    const bool ok = ti < ntok && h0 + hi < group;
    row_pos[r] = ok ? p.positions[t0 + ti] : -1;
    row_tok[r] = t0 + ti;
    if (ok) atomicMax(&n_keys, row_pos[r] + 1);
  }
  __syncthreads();
  // Q rows as bf16 hi/lo; padding rows and columns are zero.
  for (int i = threadIdx.x; i < kRows * tc.dk_pad; i += blockDim.x) {
    const int r = i / tc.dk_pad, d = i % tc.dk_pad;
    float x = 0.0f;
    if (row_pos[r] >= 0 && d < dk) {
      const int h = kvh * group + h0 + r % tc.hb, t = row_tok[r];
      x = d < p.d1 ? p.q1[int64_t(t) * p.q_row_stride + int64_t(h) * p.q_head_stride + d]
                   : p.q2[int64_t(t) * p.q2_row_stride + int64_t(h) * p.q2_head_stride + (d - p.d1)];
    }
    split_bf16(x, qh[r * QS + d], ql[r * QS + d]);
  }

  constexpr int NT = kKeys / 8;  // key n8 tiles per step
  float o[NDV][4];
#pragma unroll
  for (int i = 0; i < NDV; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[i][e] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};  // rows g, g + 8 of this warp's tile
  const int my_pos[2] = {row_pos[16 * wm + g], row_pos[16 * wm + g + 8]};
  const int nk = n_keys;

  for (int j0 = 0; j0 < nk; j0 += kKeys) {
    __syncthreads();  // the previous tile is no longer read (and Q is written, on the first pass)
    if (threadIdx.x < kKeys) {
      const int j = j0 + threadIdx.x;
      int64_t off = -1;
      if (j < nk) {
        const int32_t blk = p.block_tables[int64_t(s) * p.max_blocks + j / p.block_size];
        off = (int64_t(blk) * p.block_size + j % p.block_size) * p.width;
      }
      key_off[threadIdx.x] = off;
    }
    __syncthreads();
    load_tile_split(cache, key_off, k_base, dk, tc.dk_pad, vec_k, kh, kl, QS);
    if (!tc.v_in_k) load_tile_split(cache, key_off, v_base, p.dv, tc.dv_pad, vec_v, vh, vl, VS);
    __syncthreads();

    // S = Q K^T for rows 16 wm .., keys j0 .. j0 + 31 (three products: hi hi, lo hi, hi lo).
    float sc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[nt][e] = 0.0f;
    const int arow = 16 * wm + (lane & 7) + ((lane >> 3) & 1) * 8, acol = (lane >> 4) * 8;
    for (int ks = 0; ks < tc.dk_pad / 16; ++ks) {
      uint32_t ah[4], al[4];
      ldmatrix_x4(ah, qh + arow * QS + 16 * ks + acol);
      ldmatrix_x4(al, ql + arow * QS + 16 * ks + acol);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {  // key tiles 2np, 2np + 1
        const int krow = 16 * np + (lane & 7) + (lane >> 4) * 8, kcol = 16 * ks + ((lane >> 3) & 1) * 8;
        uint32_t bh[4], bl[4];
        ldmatrix_x4(bh, kh + krow * QS + kcol);
        ldmatrix_x4(bl, kl + krow * QS + kcol);
#pragma unroll
        for (int u = 0; u < 2; ++u) {
          mma_bf16_16816(sc[2 * np + u], ah, bh[2 * u], bh[2 * u + 1]);
          mma_bf16_16816(sc[2 * np + u], al, bh[2 * u], bh[2 * u + 1]);
          mma_bf16_16816(sc[2 * np + u], ah, bl[2 * u], bl[2 * u + 1]);
        }
      }
    }
    // Mask, scale, online softmax (rows g and g + 8 of the tile; a row's 32 scores lie in its 4 lanes).
    float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hr = e >> 1, j = j0 + 8 * nt + 2 * c + (e & 1);
        const float v = (j <= my_pos[hr]) ? sc[nt][e] * p.scale : -INFINITY;
        sc[nt][e] = v;
        mt[hr] = fmaxf(mt[hr], v);
      }
    float corr[2], psum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      mt[hr] = fmaxf(mt[hr], __shfl_xor_sync(0xffffffffu, mt[hr], 1));
      mt[hr] = fmaxf(mt[hr], __shfl_xor_sync(0xffffffffu, mt[hr], 2));
      const float m_new = fmaxf(m_run[hr], mt[hr]);
      corr[hr] = (m_run[hr] == -INFINITY) ? 0.0f : expf(m_run[hr] - m_new);
      m_run[hr] = m_new;
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hr = e >> 1;
        const float pv = (m_run[hr] == -INFINITY || sc[nt][e] == -INFINITY) ? 0.0f : expf(sc[nt][e] - m_run[hr]);
        sc[nt][e] = pv;
        psum[hr] += pv;
      }
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      psum[hr] += __shfl_xor_sync(0xffffffffu, psum[hr], 1);
      psum[hr] += __shfl_xor_sync(0xffffffffu, psum[hr], 2);
      l_run[hr] = l_run[hr] * corr[hr] + psum[hr];
    }
#pragma unroll
    for (int i = 0; i < NDV; ++i) {
      o[i][0] *= corr[0], o[i][1] *= corr[0];
      o[i][2] *= corr[1], o[i][3] *= corr[1];
    }
    // O += P V over this warp's value columns: P (hi + lo) as A fragments straight from the score registers.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      uint32_t ph[4], pl[4];
      const float* t0v = sc[2 * kk];
      const float* t1v = sc[2 * kk + 1];
      const float pa[4][2] = {{t0v[0], t0v[1]}, {t0v[2], t0v[3]}, {t1v[0], t1v[1]}, {t1v[2], t1v[3]}};
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        ph[r] = pack_bf16x2(pa[r][0], pa[r][1]);
        const __nv_bfloat162 hb = *reinterpret_cast<const __nv_bfloat162*>(&ph[r]);
        pl[r] = pack_bf16x2(pa[r][0] - __low2float(hb), pa[r][1] - __high2float(hb));
      }
      const int vrow = 16 * kk + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int np = 0; np < NDV / 2; ++np) {  // value n8 tiles 2np, 2np + 1 of this warp's half
        const int vc = vcol + wd * (8 * NDV) + 16 * np + (lane >> 4) * 8;
        uint32_t bh[4], bl[4];
        ldmatrix_x4<true>(bh, vh + vrow * vstride + vc);
        ldmatrix_x4<true>(bl, vl + vrow * vstride + vc);
#pragma unroll
        for (int u = 0; u < 2; ++u) {
          mma_bf16_16816(o[2 * np + u], ph, bh[2 * u], bh[2 * u + 1]);
          mma_bf16_16816(o[2 * np + u], pl, bh[2 * u], bh[2 * u + 1]);
          mma_bf16_16816(o[2 * np + u], ph, bl[2 * u], bl[2 * u + 1]);
        }
      }
    }
  }
  // out = O / l for the real rows and value columns.
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int r = 16 * wm + g + 8 * hr;
    if (row_pos[r] < 0) continue;
    const int h = kvh * group + h0 + r % tc.hb, t = row_tok[r];
    const float inv = 1.0f / l_run[hr];
    float* out = p.out + int64_t(t) * p.out_row_stride + int64_t(h) * p.out_head_stride;
#pragma unroll
    for (int i = 0; i < NDV; ++i)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = wd * (8 * NDV) + 8 * i + 2 * c + e;
        if (d < p.dv) out[d] = o[i][2 * hr + e] * inv;
      }
  }
}

template <int NDV, typename T>
void launch_ndv(const AttnArgs& a, const AttnTc& tc, dim3 grid, cudaStream_t s) {
  MMFP4_CUDA_CHECK(cudaFuncSetAttribute(attention_tc_kernel<NDV, T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(tc.smem)), "attention (tensor cores): shared memory ", tc.smem);
  MMFP4_LAUNCH(grid, 256, tc.smem, s, attention_tc_kernel<NDV, T>)(a, tc);
}

template <int NDV>
void launch_ndv(const AttnArgs& a, const AttnTc& tc, dim3 grid, cudaStream_t s) {
  if (a.cache_f32)
    launch_ndv<NDV, float>(a, tc, grid, s);
  else
    launch_ndv<NDV, uint16_t>(a, tc, grid, s);
}

}  // namespace

bool attention_tc_plan(const AttnArgs& a, AttnTc& tc, size_t max_smem) {
  const int group = a.heads / a.kv_heads, dk = a.d1 + a.d2;
  tc.dk_pad = (dk + 15) / 16 * 16;
  tc.dv_pad = (a.dv + 15) / 16 * 16;
  if (a.dv != 64 && a.dv != 128 && a.dv != 256 && a.dv != 512) return false;
  tc.hb = std::min(group, kRows);
  tc.head_blocks = (group + tc.hb - 1) / tc.hb;
  tc.tq = std::max(1, kRows / tc.hb);
  // Values inside the key row range (MLA: the latent is both): read from the key tile.
  const int64_t dvk = a.v_off - a.k_off, dvk_step = a.v_off_per_kvh - a.k_off_per_kvh;
  tc.v_in_k = dvk_step == 0 && dvk >= 0 && dvk + a.dv <= dk && dvk % 8 == 0;
  tc.v_col = int(dvk);
  const int64_t qs = tc.dk_pad + kPad, vs = tc.dv_pad + kPad;
  tc.smem = size_t(2 * kRows * qs + 2 * kKeys * qs + (tc.v_in_k ? 0 : 2 * kKeys * vs)) * 2 + kRows * 8 + kKeys * 8;
  return tc.smem <= max_smem;
}

void launch_attention_tc(const AttnArgs& a, const AttnTc& tc, cudaStream_t s) {
  MMFP4_LAUNCH(1, 32, 0, s, tc_plan_kernel)(a.seq, a.n_tokens, tc.tq, tc.blocks, tc.count);
  MMFP4_CUDA_LAUNCHED("attention (tensor cores) plan, ", a.n_tokens, " tokens");
  const dim3 grid(unsigned(a.n_tokens), unsigned(a.kv_heads * tc.head_blocks));
  switch (a.dv) {
    case 64: launch_ndv<4>(a, tc, grid, s); break;
    case 128: launch_ndv<8>(a, tc, grid, s); break;
    case 256: launch_ndv<16>(a, tc, grid, s); break;
    default: launch_ndv<32>(a, tc, grid, s); break;
  }
  MMFP4_CUDA_LAUNCHED("attention (tensor cores) ", a.n_tokens, " tokens, ", a.heads, " heads / ", a.kv_heads,
                      " kv heads, key ", a.d1, " + ", a.d2, ", value ", a.dv, ", ", tc.smem, " bytes of shared memory");
}

}  // namespace mmfp4::cuda
