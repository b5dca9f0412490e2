// Probe (device measurement, not part of the build): can the MMFP4 skinny GEMM of 9..16 tokens (two n8 token tiles)
// run within 1.3x of the one-token GEMV when its weights arrive by the copy engine instead of by loads into registers?
// Two designs, both with one block per SM, CW consumer warps (a 16-row tile each) running the raw loop's math
// (fp4_fragment_raw, hi + lo mma, one scale per 128 columns) and a producer warp issuing cp.async.bulk copies of each
// stage (CPS 64-column chunks of the tiles' layout-2 words, and the stage's prepared hi + lo activations) into a ring
// of STAGES shared-memory slots completing on mbarriers:
//   tma_gemv      stream-K over (row block, stage): every block an equal run, a row block split between blocks summed
//                 by the last one to finish (a counter), in block order. Knobs: copies per tile (PAR) or one 2-D
//                 tensor copy (TMAP), weights by loads into registers D stages ahead instead (D > 0), the finish
//                 (FL: none, partial sums only, with __threadfence, with one acq_rel atomic), globaltimer traces.
//   whole_k_gemv  no split: block b owns tiles [b CW, b CW + CW) over all of K (CW = ceil(tiles / SMs)); the kept
//                 design (src/backend/cuda/gemv_whole_k.cu).
// First the read ceiling at the two sizes, with and without PDL (read_ceiling). Each GEMV variant is checked against
// a plain kernel with the same fragment math (one warp per tile, loads from global):
// max |y - ref| / max |ref| < 1e-5 and nothing NaN. H100 results: bench/results/cuda-ab-session14-0504269.txt.
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc -o /tmp/probe_tma scripts/device/probe_tma_gemv.cu
//   /tmp/probe_tma
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "probe_util.cuh"
#include "backend/cuda/bulk_copy.cuh"
#include "backend/cuda/common.cuh"

using namespace mmfp4::cuda;

// One chunk pair (128 columns) of one 16-row tile: w0, w1 = the tile's two chunks; x = the stage's prepared
// activations [hi, lo][TM rows][XR] at the pair's first column; part += the hi halves' raw products, lo += the lo
// halves' (lo may be part itself; else two dependency chains of 8 mma per pair instead of one of 16 and the caller
// adds lo to part).
template <int NT, int XR>
__device__ __forceinline__ void pair_math2(float (&part)[NT][4], float (&lo)[NT][4], const uint4& w0, const uint4& w1,
                                           const uint16_t* x, int g, int c) {
  constexpr int TM = 8 * NT;
#pragma unroll
  for (int v = 0; v < 2; ++v) {
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      uint32_t a0[4], a1[4];
      fp4_fragment_raw(word_of(v ? w1 : w0, 2 * b), a0);
      fp4_fragment_raw(word_of(v ? w1 : w0, 2 * b + 1), a1);
      const int off = (2 * v + b) * 32 + 8 * c;
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const uint16_t* r = x + (8 * t + g) * XR + off;
        const uint4 xh = *reinterpret_cast<const uint4*>(r);
        const uint4 xl = *reinterpret_cast<const uint4*>(r + TM * XR);
        mma_bf16_16816(part[t], a0, xh.x, xh.y);
        mma_bf16_16816(lo[t], a0, xl.x, xl.y);
        mma_bf16_16816(part[t], a1, xh.z, xh.w);
        mma_bf16_16816(lo[t], a1, xl.z, xl.w);
      }
    }
  }
}

template <int NT, int XR>
__device__ __forceinline__ void pair_math(float (&part)[NT][4], const uint4& w0, const uint4& w1, const uint16_t* x,
                                          int g, int c) {
  pair_math2<NT, XR>(part, part, w0, w1, x, g, c);
}

struct Args {
  const uint4* w;          // [n_tiles][k_chunks][32] layout-2 words
  const uint32_t* scales;  // [n_tiles][groups][8]
  const uint16_t* xs;      // [Q][2][TM][XR] prepared bf16 (x 2^64), XR = 64 CPS + 32
  float* y;                // [TM][n]
  float* partial;          // [G][maxseg][TM][CW * 16]
  int* counters;           // [row blocks], zero between launches
  int n, n_tiles, k_chunks, groups, Q, rbs, maxseg;
  int64_t T;  // rbs * Q stage units
  unsigned long long* trace;  // [G][8] globaltimer stamps of consumer thread 0 (or null)
};

__host__ __device__ inline int64_t unit_start(int64_t T, int G, int c) { return T * c / G; }

// CPS chunks (64 columns each) per stage; MATH = false: the consumers only wait and release (the copy rate alone);
// PAR: the producer warp's lanes issue the tiles' copies in parallel (else lane 0 issues all).
// The row block's finish after this block stored its segment: the last block of the row block to arrive sums all
// blocks' segments in block order (consumer threads only; named barrier 1).
template <int TM, int CW, bool LIGHT>
__device__ __noinline__ void finish_row_block(const Args& a, int rb, int G, int* last_flag) {
  int c_lo = int(int64_t(rb) * a.Q * G / a.T);
  while (c_lo > 0 && unit_start(a.T, G, c_lo) > int64_t(rb) * a.Q) --c_lo;
  while (unit_start(a.T, G, c_lo + 1) <= int64_t(rb) * a.Q) ++c_lo;
  int c_hi = c_lo;
  while (c_hi + 1 < G && unit_start(a.T, G, c_hi + 1) < int64_t(rb + 1) * a.Q) ++c_hi;
  if (!LIGHT) __threadfence();
  asm volatile("bar.sync 1, %0;\n" ::"n"(CW * 32));
  if (threadIdx.x == 0) {
    int old;
    if (LIGHT) {
      // release the block's partials (ordered before by the barrier) and acquire the others' (CUTLASS's semaphore)
      asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;\n" : "=r"(old) : "l"(&a.counters[rb]) : "memory");
    } else {
      old = atomicAdd(&a.counters[rb], 1);
    }
    *last_flag = old == c_hi - c_lo;
    if (*last_flag) a.counters[rb] = 0;
  }
  asm volatile("bar.sync 1, %0;\n" ::"n"(CW * 32));
  if (!*last_flag) return;
  if (!LIGHT) __threadfence();
  const int nrows = min(CW * 16, a.n - rb * CW * 16);
  for (int e = threadIdx.x; e < TM * CW * 4; e += CW * 32) {
    const int tok = e / (CW * 4), r = 4 * (e % (CW * 4));
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int cc = c_lo; cc <= c_hi; cc += 4) {
      float4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int c2 = cc + u;
        if (c2 <= c_hi) {
          const int jj = rb - int(unit_start(a.T, G, c2) / a.Q);
          v[u] = __ldcg(reinterpret_cast<const float4*>(a.partial + ((int64_t(c2) * a.maxseg + jj) * TM + tok) *
                                                                        (CW * 16) + r));
        }
      }
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (cc + u <= c_hi) sum.x += v[u].x, sum.y += v[u].y, sum.z += v[u].z, sum.w += v[u].w;
    }
    const float o[4] = {sum.x, sum.y, sum.z, sum.w};
    for (int i = 0; i < 4; ++i)
      if (r + i < nrows) a.y[int64_t(tok) * a.n + rb * CW * 16 + r + i] = o[i] * 0x1p62f;
  }
}

// TMAP: the stage's weights of all CW tiles in one 2-D tensor copy (wmap: [n_tiles][k_chunks * 64] u64, box
// [CW][64 CPS]); ACT = false: no activation copy (with MATH = false: the weight stream alone).
// D > 0: the weights are not copied; each consumer warp loads its own with 16-byte loads into registers, D stages
// ahead (only the activations come by the copy engine).
template <int NT, int CW, int STAGES, int CPS, bool MATH, bool PAR, bool TMAP = false, bool ACT = true, int D = 0,
          int FL = 2>
__global__ void __launch_bounds__((CW + 1) * 32, 1) tma_gemv(Args a, const __grid_constant__ CUtensorMap wmap) {
  constexpr int TM = 8 * NT, XR = 64 * CPS + 32, TB = CPS * 512, WB = D > 0 ? 0 : CW * TB, XB = 2 * TM * XR * 2, SB = WB + XB;
  extern __shared__ __align__(128) unsigned char smem[];
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + STAGES * SB);
  uint64_t* empty = full + STAGES;
  __shared__ int last_flag;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, G = gridDim.x, cta = blockIdx.x;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], CW);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  const int64_t s0 = unit_start(a.T, G, cta), s1 = unit_start(a.T, G, cta + 1);
  if (warp == CW) {  // producer
    if (!PAR && lane != 0) return;
    int slot = 0;
    uint32_t phase = 0;
    for (int64_t s = s0; s < s1; ++s) {
      const int rb = int(s / a.Q), q = int(s % a.Q);
      const int nvalid = min(CW, a.n_tiles - rb * CW);
      unsigned char* base = smem + slot * SB;
      if (lane == 0) {
        if (s - s0 >= STAGES) mbar_wait(&empty[slot], phase ^ 1);
        mbar_arrive_expect_tx(&full[slot], uint32_t((D > 0 ? 0 : TMAP ? CW : nvalid) * TB + (ACT ? XB : 0)));
        if (ACT) bulk_copy_g2s(base + WB, a.xs + int64_t(q) * (XB / 2), XB, &full[slot]);
        if (TMAP && D == 0)
          asm volatile(
              "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::
                  "r"(smem_addr(base)),
              "l"(reinterpret_cast<uint64_t>(&wmap)), "r"(CPS * 64 * q), "r"(rb * CW), "r"(smem_addr(&full[slot]))
              : "memory");
      }
      if constexpr (TMAP || D > 0) {
      } else if constexpr (PAR) {
        __syncwarp();
        for (int w = lane; w < nvalid; w += 32)
          bulk_copy_g2s(base + w * TB, a.w + (int64_t(rb * CW + w) * a.k_chunks + CPS * q) * 32, TB, &full[slot]);
      } else {
        for (int w = 0; w < nvalid; ++w)
          bulk_copy_g2s(base + w * TB, a.w + (int64_t(rb * CW + w) * a.k_chunks + CPS * q) * 32, TB, &full[slot]);
      }
      if (++slot == STAGES) slot = 0, phase ^= 1;
    }
    return;
  }
  // consumers
  const int g = lane >> 2, c = lane & 3;
  float acc[NT][4] = {};
  int slot = 0;
  uint32_t phase = 0;
  const int rb_first = int(s0 / a.Q);
  // Row block rb's sums of this block (segment j) -> partial; the last block of the row block sums all in order.
  auto flush = [&](int rb) {
    const int j = rb - rb_first;
    float* part = a.partial + (int64_t(cta) * a.maxseg + j) * TM * (CW * 16);
    const int r_lo = warp * 16 + g;
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int tok = 8 * t + 2 * c + (i & 1), r = r_lo + (i < 2 ? 0 : 8);
        if (FL >= 1 || acc[t][i] == 1234.5f) part[tok * (CW * 16) + r] = acc[t][i];
        acc[t][i] = 0.0f;
      }
    if (FL >= 2) finish_row_block<TM, CW, FL == 3>(a, rb, G, &last_flag);
  };
  // One segment [e0, e1) of this block's run inside one row block, then its flush.
  int nseg = 0;
  if (a.trace && threadIdx.x == 0) a.trace[cta * 8 + 0] = gtimer();
  for (int e0 = int(s0); e0 < int(s1);) {
    const int rb = e0 / a.Q;
    const int e1 = min(int(s1), (rb + 1) * a.Q);
    const int nt = min(rb * CW + warp, a.n_tiles - 1);
    const uint32_t* sp = a.scales + int64_t(nt) * a.groups * 8 + g;
    const uint4* wp = a.w + int64_t(nt) * a.k_chunks * 32 + lane;
    uint32_t sw[CPS / 2];
#pragma unroll
    for (int p = 0; p < CPS / 2; ++p) sw[p] = __ldg(sp + ((e0 - rb * a.Q) * (CPS / 2) + p) * 8);
    auto body = [&](int s, const uint4 (&wv)[CPS]) {
      const int q = s - rb * a.Q;
      uint32_t sw_next[CPS / 2];
#pragma unroll
      for (int p = 0; p < CPS / 2; ++p) sw_next[p] = s + 1 < e1 ? __ldg(sp + ((q + 1) * (CPS / 2) + p) * 8) : 0u;
      mbar_wait(&full[slot], phase);
      const unsigned char* base = smem + slot * SB;
      if constexpr (MATH) {
#pragma unroll
        for (int p = 0; p < CPS / 2; ++p) {
          uint4 w0, w1;
          if constexpr (D > 0) {
            w0 = wv[2 * p];
            w1 = wv[2 * p + 1];
          } else {
            w0 = *reinterpret_cast<const uint4*>(base + warp * TB + 1024 * p + lane * 16);
            w1 = *reinterpret_cast<const uint4*>(base + warp * TB + 1024 * p + 512 + lane * 16);
          }
          float part[NT][4] = {};
          pair_math<NT, XR>(part, w0, w1, reinterpret_cast<const uint16_t*>(base + WB) + 128 * p, g, c);
          add_scaled<NT>(acc, part, sw[p]);
        }
      } else {
        uint32_t x = sw[0];
        if constexpr (D > 0)
#pragma unroll
          for (int j = 0; j < CPS; ++j) x ^= wv[j].x ^ wv[j].y ^ wv[j].z ^ wv[j].w;
        acc[0][0] += float(x & 1);
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[slot]);
#pragma unroll
      for (int p = 0; p < CPS / 2; ++p) sw[p] = sw_next[p];
      if (++slot == STAGES) slot = 0, phase ^= 1;
    };
    if constexpr (D == 0) {
      const uint4 none[CPS] = {};
      for (int s = e0; s < e1; ++s) body(s, none);
    } else {
      constexpr int DD = D > 0 ? D : 1;
      uint4 wr[DD][CPS];
      auto wload = [&](int s, uint4 (&dst)[CPS]) {
        if (s >= e1) return;
        const uint4* p = wp + (s - rb * a.Q) * CPS * 32;
#pragma unroll
        for (int j = 0; j < CPS; ++j) dst[j] = ld_stream(p + j * 32);
      };
#pragma unroll
      for (int d = 0; d < DD; ++d) wload(e0 + d, wr[d]);
      for (int s = e0; s < e1; s += DD) {
#pragma unroll
        for (int d = 0; d < DD; ++d) {
          if (s + d >= e1) break;
          uint4 cur[CPS];
#pragma unroll
          for (int j = 0; j < CPS; ++j) cur[j] = wr[d][j];
          wload(s + d + DD, wr[d]);
          body(s + d, cur);
        }
      }
    }
    if (a.trace && threadIdx.x == 0 && nseg < 3) a.trace[cta * 8 + 1 + 2 * nseg] = gtimer();
    flush(rb);
    if (a.trace && threadIdx.x == 0 && nseg < 3) a.trace[cta * 8 + 2 + 2 * nseg] = gtimer();
    ++nseg;
    e0 = e1;
  }
}

// No split of K: block c owns tiles [c CW, c CW + CW) (CW runtime: ceil(n_tiles / blocks)), one consumer warp per tile
// over all of K; every block streams the same activation stages. No partial sums, no counters, no fences.
// LDGD > 0: weights by 16-byte loads LDGD stages ahead instead of bulk copies.
template <int NT, int STAGES, int CPS, int LDGD = 0, int ACCS = 1>
__global__ void __launch_bounds__(512, 1) whole_k_gemv(Args a, int CW) {
  constexpr int TM = 8 * NT, XR = 64 * CPS + 32, TB = CPS * 512, XB = 2 * TM * XR * 2;
  extern __shared__ __align__(128) unsigned char smem[];
  const int WB = LDGD > 0 ? 0 : CW * TB, SB = WB + XB;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + STAGES * SB);
  uint64_t* empty = full + STAGES;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t0 = blockIdx.x * CW, nvalid = min(CW, a.n_tiles - t0);
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], nvalid);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (warp == CW) {  // producer
    int slot = 0;
    uint32_t phase = 0;
    for (int q = 0; q < a.Q; ++q) {
      unsigned char* base = smem + slot * SB;
      if (lane == 0) {
        if (q >= STAGES) mbar_wait(&empty[slot], phase ^ 1);
        mbar_arrive_expect_tx(&full[slot], uint32_t((LDGD > 0 ? 0 : nvalid * TB) + XB));
        bulk_copy_g2s(base + WB, a.xs + int64_t(q) * (XB / 2), XB, &full[slot]);
      }
      if constexpr (LDGD == 0) {
        __syncwarp();
        for (int w = lane; w < nvalid; w += 32)
          bulk_copy_g2s(base + w * TB, a.w + (int64_t(t0 + w) * a.k_chunks + CPS * q) * 32, TB, &full[slot]);
      }
      if (++slot == STAGES) slot = 0, phase ^= 1;
    }
    return;
  }
  if (warp >= nvalid) return;
  const int g = lane >> 2, c = lane & 3, nt = t0 + warp;
  const uint32_t* sp = a.scales + int64_t(nt) * a.groups * 8 + g;
  const uint4* wp = a.w + int64_t(nt) * a.k_chunks * 32 + lane;
  float acc[NT][4] = {};
  int slot = 0;
  uint32_t phase = 0;
  uint32_t sw[CPS / 2];
#pragma unroll
  for (int p = 0; p < CPS / 2; ++p) sw[p] = __ldg(sp + p * 8);
  auto body = [&](int q, const uint4 (&wv)[CPS]) {
    uint32_t sw_next[CPS / 2];
#pragma unroll
    for (int p = 0; p < CPS / 2; ++p) sw_next[p] = q + 1 < a.Q ? __ldg(sp + ((q + 1) * (CPS / 2) + p) * 8) : 0u;
    mbar_wait(&full[slot], phase);
    const unsigned char* base = smem + slot * SB;
#pragma unroll
    for (int p = 0; p < CPS / 2; ++p) {
      uint4 w0, w1;
      if constexpr (LDGD > 0) {
        w0 = wv[2 * p];
        w1 = wv[2 * p + 1];
      } else {
        w0 = *reinterpret_cast<const uint4*>(base + warp * TB + 1024 * p + lane * 16);
        w1 = *reinterpret_cast<const uint4*>(base + warp * TB + 1024 * p + 512 + lane * 16);
      }
      float part[NT][4] = {};
      if constexpr (ACCS == 2) {
        float lo[NT][4] = {};
        pair_math2<NT, XR>(part, lo, w0, w1, reinterpret_cast<const uint16_t*>(base + WB) + 128 * p, g, c);
#pragma unroll
        for (int t = 0; t < NT; ++t)
#pragma unroll
          for (int i = 0; i < 4; ++i) part[t][i] += lo[t][i];
      } else {
        pair_math<NT, XR>(part, w0, w1, reinterpret_cast<const uint16_t*>(base + WB) + 128 * p, g, c);
      }
      add_scaled<NT>(acc, part, sw[p]);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[slot]);
#pragma unroll
    for (int p = 0; p < CPS / 2; ++p) sw[p] = sw_next[p];
    if (++slot == STAGES) slot = 0, phase ^= 1;
  };
  if constexpr (LDGD == 0) {
    const uint4 none[CPS] = {};
    for (int q = 0; q < a.Q; ++q) body(q, none);
  } else {
    constexpr int DD = LDGD > 0 ? LDGD : 1;
    uint4 wr[DD][CPS];
    auto wload = [&](int q, uint4 (&dst)[CPS]) {
      if (q >= a.Q) return;
#pragma unroll
      for (int j = 0; j < CPS; ++j) dst[j] = ld_stream(wp + (q * CPS + j) * 32);
    };
#pragma unroll
    for (int d = 0; d < DD; ++d) wload(d, wr[d]);
    for (int q = 0; q < a.Q; q += DD) {
#pragma unroll
      for (int d = 0; d < DD; ++d) {
        if (q + d >= a.Q) break;
        uint4 cur[CPS];
#pragma unroll
        for (int j = 0; j < CPS; ++j) cur[j] = wr[d][j];
        wload(q + d + DD, wr[d]);
        body(q + d, cur);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int tok = 8 * t + 2 * c + (i & 1), n = nt * 16 + g + (i < 2 ? 0 : 8);
      if (n < a.n) a.y[int64_t(tok) * a.n + n] = acc[t][i] * 0x1p62f;
    }
}

// Reference: one warp per tile over all K, loads from global, the same fragment math.
template <int NT, int CPS>
__global__ void ref_gemv(Args a) {
  constexpr int TM = 8 * NT, XR = 64 * CPS + 32;
  const int nt = blockIdx.x * 4 + threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, c = lane & 3;
  if (nt >= a.n_tiles) return;
  float acc[NT][4] = {};
  for (int gp = 0; gp < a.k_chunks / 2; ++gp) {
    const int q = gp / (CPS / 2), p = gp % (CPS / 2);
    const uint4 w0 = a.w[(int64_t(nt) * a.k_chunks + 2 * gp) * 32 + lane];
    const uint4 w1 = a.w[(int64_t(nt) * a.k_chunks + 2 * gp + 1) * 32 + lane];
    float part[NT][4] = {};
    pair_math<NT, XR>(part, w0, w1, a.xs + int64_t(q) * 2 * TM * XR + 128 * p, g, c);
    add_scaled<NT>(acc, part, a.scales[(int64_t(nt) * a.groups + gp) * 8 + g]);
  }
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int tok = 8 * t + 2 * c + (i & 1), n = nt * 16 + g + (i < 2 ? 0 : 8);
      if (n < a.n) a.y[int64_t(tok) * a.n + n] = acc[t][i] * 0x1p62f;
    }
}

// fp32 activations [TM][k] -> prepared [Q][hi, lo][TM][XR] bf16 scaled by 2^64, stages of 64 CPS columns.
template <int NT, int CPS>
__global__ void prep_kernel(const float* x, int k, uint16_t* xs) {
  constexpr int TM = 8 * NT, XR = 64 * CPS + 32;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= TM * k) return;
  const int r = i / k, col = i % k, q = col / (64 * CPS), cc = col % (64 * CPS);
  const float v = x[i] * 0x1p64f;
  const __nv_bfloat16 h = __float2bfloat16_rn(v);
  const __nv_bfloat16 l = __float2bfloat16_rn(v - __bfloat162float(h));
  uint16_t* base = xs + int64_t(q) * 2 * TM * XR;
  base[r * XR + cc] = __bfloat16_as_ushort(h);
  base[TM * XR + r * XR + cc] = __bfloat16_as_ushort(l);
}

struct Bufs {
  std::vector<const uint4*> wc;
  std::vector<const uint32_t*> sc;
  const float* x;
  uint16_t* xs;
  float *y, *yref, *partial;
  int* counters;
  int copies, sms, iters;
  unsigned long long* trace = nullptr;
};

// max |y - yref| / max |yref| over the [TM][n] outputs; *nan: something not finite.
double rel_err_vs_ref(int TM, int n, const Bufs& B, bool* nan) {
  std::vector<float> h(size_t(TM) * n), hr(size_t(TM) * n);
  CHECK(cudaMemcpy(h.data(), B.y, h.size() * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(hr.data(), B.yref, hr.size() * 4, cudaMemcpyDeviceToHost));
  double md = 0, mr = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    if (!std::isfinite(h[i])) *nan = true;
    md = std::max(md, double(std::fabs(h[i] - hr[i])));
    mr = std::max(mr, double(std::fabs(hr[i])));
  }
  return md / mr;
}

// Microseconds per launch: 3 warm-up launches, then B.iters back to back, weight copy i % copies each.
template <typename L>
double time_us(const Bufs& B, Args a, L launch) {
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  for (int i = 0; i < 3 + B.iters; ++i) {
    if (i == 3) CHECK(cudaEventRecord(e0));
    a.w = B.wc[i % B.copies];
    a.scales = B.sc[i % B.copies];
    launch(a, i % B.copies);
  }
  CHECK(cudaEventRecord(e1));
  CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, e0, e1));
  return 1000.0 * ms / B.iters;
}

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 f = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q;
    CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q));
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return f;
}
CUtensorMap weight_map(const void* w, int n_tiles, int k_chunks, int cw, int cps, CUtensorMapL2promotion promo) {
  CUtensorMap m;
  const cuuint64_t dims[2] = {cuuint64_t(k_chunks) * 64, cuuint64_t(n_tiles)};
  const cuuint64_t strides[1] = {cuuint64_t(k_chunks) * 512};
  const cuuint32_t box[2] = {cuuint32_t(64 * cps), cuuint32_t(cw)}, estr[2] = {1, 1};
  const CUresult r = encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_UINT64, 2, const_cast<void*>(w), dims, strides, box, estr,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, promo,
                                 CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    std::printf("cuTensorMapEncodeTiled failed: %d\n", int(r));
    std::exit(1);
  }
  return m;
}

template <int NT, int CW, int STAGES, int CPS, bool MATH, bool PAR, bool TMAP = false, bool ACT = true, int D = 0,
          int FL = 2>
void run(const char* name, int n, int k, const Bufs& B, CUtensorMapL2promotion promo = CU_TENSOR_MAP_L2_PROMOTION_NONE) {
  constexpr int TM = 8 * NT, XR = 64 * CPS + 32, SB = (D > 0 ? 0 : CW * CPS * 512) + 2 * TM * XR * 2;
  const int smem = STAGES * SB + 2 * STAGES * 8;
  auto kern = tma_gemv<NT, CW, STAGES, CPS, MATH, PAR, TMAP, ACT, D, FL>;
  std::vector<CUtensorMap> maps;
  for (int i = 0; i < B.copies; ++i) maps.push_back(weight_map(B.wc[i], (n + 15) / 16, k / 64, CW, CPS, promo));
  CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  prep_kernel<NT, CPS><<<(TM * k + 255) / 256, 256>>>(B.x, k, B.xs);
  Args a{};
  a.n = n;
  a.n_tiles = (n + 15) / 16;
  a.k_chunks = k / 64;
  a.groups = k / 128;
  a.Q = k / (64 * CPS);
  a.rbs = (a.n_tiles + CW - 1) / CW;
  a.T = int64_t(a.rbs) * a.Q;
  const int G = int(std::min<int64_t>(B.sms, a.T));
  int maxseg = 1;
  for (int c = 0; c < G; ++c) {
    const int64_t s0 = unit_start(a.T, G, c), s1 = unit_start(a.T, G, c + 1);
    if (s1 > s0) maxseg = std::max<int>(maxseg, int((s1 - 1) / a.Q - s0 / a.Q + 1));
  }
  a.maxseg = maxseg;
  a.xs = B.xs;
  a.partial = B.partial;
  a.counters = B.counters;
  a.w = B.wc[0];
  a.scales = B.sc[0];
  a.y = B.yref;
  ref_gemv<NT, CPS><<<(a.n_tiles + 3) / 4, 128>>>(a);
  a.y = B.y;
  CHECK(cudaMemset(B.y, 0xFF, size_t(TM) * n * 4));
  kern<<<G, (CW + 1) * 32, smem>>>(a, maps[0]);
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  bool nan = false;
  const double rel = rel_err_vs_ref(TM, n, B, &nan);
  const double us = time_us(B, a, [&](const Args& x, int i) { kern<<<G, (CW + 1) * 32, smem>>>(x, maps[i]); });
  if (B.trace) {
    CHECK(cudaMemset(B.trace, 0, 132 * 8 * 8));
    a.trace = B.trace;
    a.w = B.wc[1];
    a.scales = B.sc[1];
    kern<<<G, (CW + 1) * 32, smem>>>(a, maps[1]);
    CHECK(cudaDeviceSynchronize());
    a.trace = nullptr;
    std::vector<unsigned long long> t(132 * 8);
    CHECK(cudaMemcpy(t.data(), B.trace, t.size() * 8, cudaMemcpyDeviceToHost));
    unsigned long long t0 = ~0ull;
    for (int c = 0; c < G; ++c) t0 = std::min(t0, t[c * 8]);
    double mx[8] = {}, av[8] = {};
    int cnt[8] = {};
    for (int c = 0; c < G; ++c)
      for (int i = 0; i < 7; ++i)
        if (t[c * 8 + i]) {
          const double v = (t[c * 8 + i] - t0) * 1e-3;
          mx[i] = std::max(mx[i], v);
          av[i] += v;
          cnt[i]++;
        }
    std::printf("   trace (us from first start; avg/max over blocks): start %.1f/%.1f", av[0] / cnt[0], mx[0]);
    const char* nm[] = {"", "seg0 end", "flush0 done", "seg1 end", "flush1 done", "seg2 end", "flush2 done"};
    for (int i = 1; i < 7; ++i)
      if (cnt[i]) std::printf(" | %s %.1f/%.1f (%d)", nm[i], av[i] / cnt[i], mx[i], cnt[i]);
    std::printf("\n");
  }
  const double bytes = double(n) * k / 2 + double(n) * (k / 128) * 2;
  std::printf("%-30s n=%5d k=%4d M=%2d grid=%3d seg=%d smem=%6d: %7.2f us %6.3f TB/s  err %.1e%s\n", name, n, k, TM, G,
              maxseg, smem, us, bytes / us * 1e-6, rel, FL < 2 ? (FL == 0 ? "  (no flush)" : "  (partials only)") : FL == 3 ? "  (light fences)" : !MATH ? (ACT ? "  (no math)" : "  (no math, no act)") : (nan || !(rel < 1e-5)) ? "  FAIL" : "  ok");
}

template <int NT, int STAGES, int CPS, int LDGD = 0, int ACCS = 1>
void run_whole(const char* name, int n, int k, const Bufs& B) {
  constexpr int TM = 8 * NT, XR = 64 * CPS + 32, XB = 2 * TM * XR * 2;
  Args a{};
  a.n = n;
  a.n_tiles = (n + 15) / 16;
  a.k_chunks = k / 64;
  a.groups = k / 128;
  a.Q = k / (64 * CPS);
  const int CW = (a.n_tiles + B.sms - 1) / B.sms, G = (a.n_tiles + CW - 1) / CW;
  const int smem = STAGES * ((LDGD > 0 ? 0 : CW * CPS * 512) + XB) + 2 * STAGES * 8;
  auto kern = whole_k_gemv<NT, STAGES, CPS, LDGD, ACCS>;
  if (smem > 227 * 1024 || CW > 15) {
    std::printf("%-30s n=%5d k=%4d: CW %d smem %d does not fit\n", name, n, k, CW, smem);
    return;
  }
  CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  prep_kernel<NT, CPS><<<(TM * k + 255) / 256, 256>>>(B.x, k, B.xs);
  a.xs = B.xs;
  a.w = B.wc[0];
  a.scales = B.sc[0];
  a.y = B.yref;
  ref_gemv<NT, CPS><<<(a.n_tiles + 3) / 4, 128>>>(a);
  a.y = B.y;
  CHECK(cudaMemset(B.y, 0xFF, size_t(TM) * n * 4));
  kern<<<G, (CW + 1) * 32, smem>>>(a, CW);
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  bool nan = false;
  const double rel = rel_err_vs_ref(TM, n, B, &nan);
  const double us = time_us(B, a, [&](const Args& x, int) { kern<<<G, (CW + 1) * 32, smem>>>(x, CW); });
  const double bytes = double(n) * k / 2 + double(n) * (k / 128) * 2;
  std::printf("%-30s n=%5d k=%4d M=%2d grid=%3d CW=%2d smem=%6d: %7.2f us %6.3f TB/s  err %.1e%s\n", name, n, k, TM, G,
              CW, smem, us, bytes / us * 1e-6, rel, (nan || !(rel < 1e-5)) ? "  FAIL" : "  ok");
}

// The read ceiling at a size, launched as the engine's linears are (with PDL: each launch waits in griddepcontrol for
// the previous one but is scheduled early) and without: 16-byte loads past L1 over a region of `bytes`, a different
// region each launch (cold in L2). Printed: microseconds per launch and TB/s. These launches go to the legacy default
// stream, where they measured 9.8 us for 21.6 MB with PDL; bench_cuda_linear's read on the backend's stream, 8.55 us
// (bench/results/cuda-ab-session14-0504269.txt, parts 15 and 16): that is the ceiling to quote.
__global__ void read_region(const uint4* p, int64_t n, uint4* sink, bool pdl) {
  if (pdl) pdl_enter();
  uint4 a = make_uint4(0, 0, 0, 0);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = ld_stream(p + i);
    a.x ^= v.x, a.y ^= v.y, a.z ^= v.z, a.w ^= v.w;
  }
  if ((a.x ^ a.y ^ a.z ^ a.w) == 0x9e3779b9u) sink[blockIdx.x] = a;
}

void read_ceiling(const char* what, int64_t bytes, int sms) {
  const int64_t stride = (bytes + (int64_t(1) << 20) - 1) & ~((int64_t(1) << 20) - 1), regions = 24;
  void* buf;
  uint4* sink;
  CHECK(cudaMalloc(&buf, size_t(stride * regions)));
  CHECK(cudaMalloc(&sink, size_t(sms) * 64 * 16));
  CHECK(cudaMemset(buf, 1, size_t(stride * regions)));
  for (int pdl = 0; pdl < 2; ++pdl)
    for (int per_sm : {4, 8}) {
      auto launch = [&](int i) {
        const uint4* p = reinterpret_cast<const uint4*>(static_cast<char*>(buf) + (i % regions) * stride);
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(unsigned(sms * per_sm));
        cfg.blockDim = dim3(512);
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = pdl ? 1 : 0;
        CHECK(cudaLaunchKernelEx(&cfg, read_region, p, bytes / 16, sink, pdl != 0));
      };
      cudaEvent_t e0, e1;
      CHECK(cudaEventCreate(&e0));
      CHECK(cudaEventCreate(&e1));
      for (int i = 0; i < 5; ++i) launch(i);
      const int iters = 100;
      CHECK(cudaEventRecord(e0));
      for (int i = 0; i < iters; ++i) launch(i);
      CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      const double us = 1000.0 * ms / iters;
      std::printf("read %-22s %7.1f MB, %d blocks/SM, %s: %7.2f us  %.3f TB/s\n", what, bytes / 1e6, per_sm,
                  pdl ? "PDL   " : "no PDL", us, bytes / us * 1e-6);
    }
  CHECK(cudaFree(buf));
  CHECK(cudaFree(sink));
}

int main() {
  CHECK(cudaSetDevice(0));
  cudaDeviceProp pr;
  CHECK(cudaGetDeviceProperties(&pr, 0));
  std::printf("device %s, %d SMs, L2 %d MB\n", pr.name, pr.multiProcessorCount, pr.l2CacheSize >> 20);
  // The weights' bytes of 28672x8192 and of GLM's dense MLP (20480x2048) in MMFP4 with their scales.
  read_ceiling("28672x8192", int64_t(28672) * 8192 / 2 + int64_t(28672) * 64 * 2, pr.multiProcessorCount);
  read_ceiling("glm.dense_gate_up", int64_t(20480) * 2048 / 2 + int64_t(20480) * 16 * 2, pr.multiProcessorCount);
  const int max_n = 28672, max_k = 8192;
  Bufs B;
  B.copies = 3;
  B.sms = pr.multiProcessorCount;
  B.iters = 50;
  srand(1);
  {
    const size_t wbytes = size_t(max_n) * max_k / 2, sbytes = size_t(max_n) * (max_k / 128) * 2;
    std::vector<uint32_t> hw(wbytes / 4), hs(sbytes / 4);
    for (int cpy = 0; cpy < B.copies; ++cpy) {
      for (auto& v : hw) v = uint32_t(rand()) * 2654435761u ^ uint32_t(rand());
      for (auto& v : hs) {
        const __half a = __float2half(0.5f + float(rand() % 1000) / 2000.0f);
        const __half b = __float2half(0.5f + float(rand() % 1000) / 2000.0f);
        uint16_t ab, bb;
        std::memcpy(&ab, &a, 2);
        std::memcpy(&bb, &b, 2);
        v = uint32_t(ab) | uint32_t(bb) << 16;
      }
      void *dw, *ds;
      CHECK(cudaMalloc(&dw, wbytes));
      CHECK(cudaMalloc(&ds, sbytes));
      CHECK(cudaMemcpy(dw, hw.data(), wbytes, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(ds, hs.data(), sbytes, cudaMemcpyHostToDevice));
      B.wc.push_back(static_cast<const uint4*>(dw));
      B.sc.push_back(static_cast<const uint32_t*>(ds));
    }
  }
  float* x;
  CHECK(cudaMalloc(&x, size_t(16) * max_k * 4));
  CHECK(cudaMalloc(&B.xs, size_t(16) * max_k * 2 * 2 * 2));
  CHECK(cudaMalloc(&B.y, size_t(16) * max_n * 4));
  CHECK(cudaMalloc(&B.yref, size_t(16) * max_n * 4));
  CHECK(cudaMalloc(&B.partial, size_t(64) << 20));
  CHECK(cudaMalloc(&B.counters, 1 << 16));
  CHECK(cudaMalloc(&B.trace, 132 * 8 * 8));
  CHECK(cudaMemset(B.counters, 0, 1 << 16));
  {
    std::vector<float> hx(size_t(16) * max_k);
    for (auto& v : hx) v = float(rand() % 20001 - 10000) / 5000.0f;
    CHECK(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  }
  B.x = x;
  const int shapes[][2] = {{28672, 8192}, {20480, 2048}};
  for (int rep = 0; rep < 2; ++rep)
    for (const auto& sh : shapes) {
      const int n = sh[0], k = sh[1];
      run_whole<2, 3, 4>("whole-K tma S3 CPS4", n, k, B);
      run_whole<2, 3, 4, 0, 2>("whole-K tma S3 CPS4 2acc", n, k, B);
      run_whole<2, 4, 4, 0, 2>("whole-K tma S4 CPS4 2acc", n, k, B);
      run_whole<1, 3, 4>("NT1 whole-K tma S3 CPS4", n, k, B);
      run_whole<1, 3, 4, 0, 2>("NT1 whole-K tma S3 CPS4 2acc", n, k, B);
      if (rep == 0) run<2, 16, 4, 4, true, true, true, true, 0, 3>("stream-K CW16 S4 CPS4 tmap", n, k, B);
    }
  return 0;
}
