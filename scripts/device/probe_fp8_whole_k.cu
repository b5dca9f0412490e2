// Probe (device measurement, not part of the build): GLM's dense MLP (20480x2048) at one token on an fp8 variant of
// the engine's whole-K launch (gemv_whole_k.cu), timed back to back with PDL on rotating weight copies against the
// engine's own launch in the same process. The variant:
//   * codes in an e4m3-friendly bit layout (a word's 8 codes -> 2 registers of 4 e4m3 in 5 operations; value * 2^-6),
//   * the staged row as 4 e4m3 pieces per value (x s = p0 + p1 + p2 + p3, s a power of two per 128-column group
//     putting the group's largest |x| in [128, 256)), the pieces as 4 of the 8 columns of wgmma's B in shared memory,
//   * wgmma m64n8k32 e4m3 with A from registers: 4 tiles per warpgroup (10 tiles per block: 3 warpgroups per stage
//     parity, the last with 2 idle warps), 2 warpgroup sets taking even and odd stages, a producer warp as the
//     engine's.
// Three consumer loops: 0 decode + 4 wgmma + wait per chunk pair; 1 a stage's 8 wgmma in one group, one wait per
// stage; 2 every stage by both warpgroup sets, each its chunk pair. Checks y of each against a host sum in double
// (the fp8 tensor path adds its products with ~14 bits inside a wgmma), times them and the engine, then prints the
// timelines of loops 0 and 2 (thread 0 = consumer warp 0: [0] start, [1] after the wait, [2] after staging, [3] its
// first stage landed, [4] its last stage done; min/median/max over blocks, us). The output sums of the two warpgroup
// sets meet by atomicAdd (a probe shortcut; the engine adds them in shared memory in a fixed order).
// H100, seventeenth session (bench/results/cuda-ab-session17-6fcfd80.txt): loop 0, 6 slots all requested before the
// wait, 8.55-8.7 us per launch (2.49-2.53 TB/s) against the engine's 9.6-10.0 in the same process; with the next
// launch's first stage asked of L2 after the last copy (argv[3] = 1) 8.52.
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a [-DPROBE_SLOTS=8] [-DPROBE_TILES=12] -Isrc \
//     -o /tmp/probe_fp8_wk scripts/device/probe_fp8_whole_k.cu \
//     build-cuda/src/backend/cuda/libmmfp4_cuda.a build-cuda/src/core/libmmfp4_core.a
//   /tmp/probe_fp8_wk [launches=320] [stages before the wait=4] [next launch's stages into L2=0]
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/bulk_copy.cuh"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/wgmma.cuh"
#include "probe_fp8.cuh"
#include "probe_util.cuh"
#include "probe_whole_k_args.cuh"

using namespace mmfp4::cuda;

namespace {

constexpr int N = 20480, K = 2048, NT = N / 16, KCH = K / 64, GROUPS = K / 128, NQ = KCH / 4;
#ifndef PROBE_TILES
#define PROBE_TILES 10
#endif
constexpr int T = PROBE_TILES, KW = 2, WG_PER_KW = (T + 3) / 4, CW = 4 * WG_PER_KW * KW, THREADS = kWarp * (CW + 1);
#ifndef PROBE_SLOTS
#define PROBE_SLOTS 6
#endif
constexpr int S = PROBE_SLOTS, TILE = 2048;  // slots; stages requested before the wait: argv[2]
constexpr int B_BYTES = (K / 32) * 256, ASC_BYTES = 128, SC_BYTES = T * GROUPS * 32;
constexpr int RING = B_BYTES + ASC_BYTES + SC_BYTES, SMEM = RING + S * TILE * T + 8 * (2 * S + 1);

// Timeline (globaltimer, thread 0 = consumer warp 0 = tile 0, even stages): [launch copy][block][point]:
// 0 start, 1 after the wait, 2 after staging, 3 its first stage landed, 4 its last stage done.
__device__ unsigned long long g_tr[16][160][5];
// (The copy index comes as a kernel parameter: with a 64-bit division here, even never executed, the launch measured
// 1.9 us slower.)
__device__ __forceinline__ void stamp(int on, int copy, int pt) {
  if (on && threadIdx.x == 0) g_tr[copy][blockIdx.x][pt] = gtimer();
}

struct Args {
  const unsigned char* codes;
  const uint32_t* scales;
  const float* x;
  float* y;
  int early;
  int trace, copy;            // timeline on; the weight copy this launch reads
  const unsigned char* next;  // the next launch's codes: its first pf_stages stages asked of L2 after the last copy
  int pf_stages;
};

__device__ __forceinline__ void bulk_prefetch_l2(const void* src, uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(src), "r"(bytes) : "memory");
}
template <int MODE>
__global__ void __launch_bounds__(THREADS, 1) fp8_whole_k(Args p) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* bsm = smem;  // [64 k32 items][2 core matrices: k 0-15, 16-31][8 columns][16 bytes]
  float* ascale = reinterpret_cast<float*>(smem + B_BYTES);                    // [16 groups]: 1 / s
  uint32_t* scales = reinterpret_cast<uint32_t*>(smem + B_BYTES + ASC_BYTES);  // [T][16 groups][8]
  unsigned char* ring = smem + RING;                                           // [S][T][2 KB]
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + S * T * TILE);
  uint64_t* empty = full + S;
  uint64_t* sfull = empty + S;
  const int tid = int(threadIdx.x), warp = tid / kWarp, lane = tid % kWarp;
  const int t0 = int(blockIdx.x) * T, tiles = min(T, NT - t0);
  if (tid == 0) init_ring_barriers(full, empty, sfull, S, MODE == 2 ? KW * tiles : tiles);
  __syncthreads();
  stamp(p.trace, p.copy, 0);
  const bool producer = warp == CW;
  auto copy_codes = [&](int q, int slot) {
    for (int w = lane; w < tiles; w += kWarp)
      bulk_copy_g2s(ring + (slot * T + w) * TILE, p.codes + (int64_t(t0 + w) * KCH + q * 4) * 512, TILE, &full[slot]);
  };
  if (producer) {
    if (lane == 0) {
      const uint32_t sb = uint32_t(tiles * GROUPS * 32);
      mbar_arrive_expect_tx(sfull, sb);
      bulk_copy_g2s(scales, p.scales + int64_t(t0) * GROUPS * 8, sb, sfull);
      for (int q = 0; q < p.early; ++q) mbar_arrive_expect_tx(&full[q], uint32_t(tiles * TILE));
    }
    __syncwarp();
    for (int q = 0; q < p.early; ++q) copy_codes(q, q);
  }
  pdl_enter();
  stamp(p.trace, p.copy, 1);
  if (tid < 512) {  // staging: warp w takes 128-column group w, lane l its columns 128 w + 4 l .. + 3
    const float4 v4 = reinterpret_cast<const float4*>(p.x)[tid];
    const float s = group_scale(v4);
    if (lane == 0) ascale[warp] = 1.0f / s;
    uint32_t pc[4];
    e4m3_pieces(v4, s, pc);
    const int col = 4 * tid, item = col / 32, kk = col % 32;
    unsigned char* cm = bsm + item * 256 + (kk / 16) * 128 + kk % 16;
#pragma unroll
    for (int n = 0; n < 4; ++n) *reinterpret_cast<uint32_t*>(cm + 16 * n) = pc[n];
    // columns 4..7 (no token): zero, 64 bytes of each of the 128 core matrices, 16 per thread
    *reinterpret_cast<uint4*>(bsm + (tid / 4) * 128 + 64 + 16 * (tid % 4)) = make_uint4(0, 0, 0, 0);
    wg_fence_smem();
  }
  __syncthreads();
  stamp(p.trace, p.copy, 2);
  if (producer) {
    for (int q = p.early; q < NQ; ++q) {
      const int slot = q % S;
      if (lane == 0) {
        mbar_wait(&empty[slot], ((q / S) & 1) ^ 1);
        mbar_arrive_expect_tx(&full[slot], uint32_t(tiles * TILE));
      }
      __syncwarp();
      copy_codes(q, slot);
    }
    if (p.next && p.pf_stages > 0)
      for (int w = lane; w < tiles; w += kWarp)
        bulk_prefetch_l2(p.next + int64_t(t0 + w) * KCH * 512, uint32_t(p.pf_stages * TILE));
    return;
  }
  const int wg = warp / 4, kw = wg / WG_PER_KW, j = 4 * (wg % WG_PER_KW) + warp % 4;
  const bool real = j < tiles;
  const int g = lane >> 2, c = lane & 3;
  const uint64_t desc0 = wg_desc(bsm, 128, 128);
  float acc[4] = {};
  mbar_wait(sfull, 0);
  // Chunk pair pp (4 k32 items) of stage q: decode from the slot into a, issue its 4 wgmma into part, add the
  // finished part with the group scales.
  auto decode = [&](int q, int pp, uint32_t(&a)[4][4]) {
    decode_chunk_pair(ring + ((q % S) * T + (real ? j : 0)) * TILE, pp, lane, real, a);
  };
  auto issue = [&](int q, int pp, uint32_t(&a)[4][4], float(&part)[4], bool fence = true, bool commit = true) {
    if (fence) {
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) wg_pin(a[i][e]);
      wg_fence();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) wg_mma_e4m3_n8(part, a[i], desc0 + (((q * 8 + 4 * pp + i) * 256) >> 4), i > 0);
    if (commit) wg_commit();
  };
  auto add = [&](int q, int pp, const float(&part)[4]) {
    const int grp = 2 * q + pp;
    const uint32_t sw = real ? scales[(j * GROUPS + grp) * 8 + g] : 0u;
    const float as = ascale[grp];
    const float s_lo = f16_bits_to_f32(uint16_t(sw & 0xFFFF)) * as, s_hi = f16_bits_to_f32(uint16_t(sw >> 16)) * as;
    acc[0] = fmaf(s_lo, part[0], acc[0]);
    acc[1] = fmaf(s_lo, part[1], acc[1]);
    acc[2] = fmaf(s_hi, part[2], acc[2]);
    acc[3] = fmaf(s_hi, part[3], acc[3]);
  };
  auto release = [&](int q) {
    __syncwarp();
    if (real && lane == 0) mbar_arrive(&empty[q % S]);
  };
  if constexpr (MODE == 0) {  // decode, issue, wait per chunk pair
    for (int q = kw; q < NQ; q += KW) {
      mbar_wait(&full[q % S], (q / S) & 1);
      if (q == kw) stamp(p.trace, p.copy, 3);
#pragma unroll
      for (int pp = 0; pp < 2; ++pp) {
        uint32_t a[4][4];
        float part[4];
        decode(q, pp, a);
        if (pp == 1) release(q);
        issue(q, pp, a, part);
        wg_wait<0>();
        add(q, pp, part);
      }
    }
  } else if constexpr (MODE == 1) {  // a stage's two chunk pairs decoded, then its 8 wgmma in one group
    for (int q = kw; q < NQ; q += KW) {
      mbar_wait(&full[q % S], (q / S) & 1);
      uint32_t a[2][4][4];
      float part[2][4];
      decode(q, 0, a[0]);
      decode(q, 1, a[1]);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) wg_pin(a[1][i][e]);
      issue(q, 0, a[0], part[0], true, false);
      issue(q, 1, a[1], part[1], false, true);
      wg_wait<0>();
      add(q, 0, part[0]);
      add(q, 1, part[1]);
      release(q);  // (before the wgmma, its divergent arrive made ptxas serialise them: C7520)
    }
  } else {  // every stage by both warpgroup sets, set kw taking chunk pair kw (the stage's latency halves: the loop's
            // tail after the last stage lands, and its head)
    for (int q = 0; q < NQ; ++q) {
      mbar_wait(&full[q % S], (q / S) & 1);
      if (q == 0) stamp(p.trace, p.copy, 3);
      uint32_t a[4][4];
      float part[4];
      decode(q, kw, a);
      issue(q, kw, a, part);
      wg_wait<0>();
      add(q, kw, part);
      release(q);
    }
  }
  stamp(p.trace, p.copy, 4);
  // The token's 4 pieces are columns 0..3: lanes c = 0 (columns 0, 1) and c = 1 (2, 3).
  float lo = acc[0] + acc[1], hi = acc[2] + acc[3];
  lo += __shfl_xor_sync(0xffffffffu, lo, 1);
  hi += __shfl_xor_sync(0xffffffffu, hi, 1);
  if (real && c == 0) {
    const int n0 = (t0 + j) * 16 + g;
    // Sums of both stage parities: warpgroup set kw adds its own (atomics: probe only, order-independent enough)
    atomicAdd(&p.y[n0], lo * 64.0f);
    atomicAdd(&p.y[n0 + 8], hi * 64.0f);
  }
}

}  // namespace

int g_mode = 0, g_early = 4, g_trace = 0, g_pf = 0;

int main(int argc, char** argv) {
  const int launches = argc > 1 ? std::atoi(argv[1]) : 320;
  g_early = argc > 2 ? std::atoi(argv[2]) : 4;  // stages requested before the wait (<= S)
  g_pf = argc > 3 ? std::atoi(argv[3]) : 0;     // stages of the next launch's codes asked of L2 (0: none)
  constexpr int kCopies = 16;
  cudaDeviceProp pr;
  CHECK(cudaGetDeviceProperties(&pr, 0));
  const long long cbytes = (long long)N * K / 2, sbytes = (long long)NT * GROUPS * 32;
  std::printf("%s: 20480x2048 at one token, %d launches back to back with PDL over %d weight copies\n", pr.name,
              launches, kCopies);
  const Fp8Linear L = make_fp8_linear(N, K, 1);
  unsigned char *codes, *scales;
  float *dx, *dy, *dy2;
  CHECK(cudaMalloc(&codes, size_t(cbytes * kCopies)));
  CHECK(cudaMalloc(&scales, size_t(sbytes * kCopies)));
  for (int c = 0; c < kCopies; ++c) {
    CHECK(cudaMemcpy(codes + c * cbytes, L.codes.data(), size_t(cbytes), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(scales + c * sbytes, L.scales.data(), size_t(sbytes), cudaMemcpyHostToDevice));
  }
  CHECK(cudaMalloc(&dx, K * 4));
  CHECK(cudaMalloc(&dy, N * 4));
  CHECK(cudaMalloc(&dy2, N * 4));
  CHECK(cudaMemcpy(dx, L.x.data(), K * 4, cudaMemcpyHostToDevice));
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  pdl_flag() = true;
  CHECK(cudaFuncSetAttribute(fp8_whole_k<0>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  CHECK(cudaFuncSetAttribute(fp8_whole_k<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  CHECK(cudaFuncSetAttribute(fp8_whole_k<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  const int blocks = (NT + T - 1) / T;
  auto fp8 = [&](int i, float* y) {
    Args a{codes + (i % kCopies) * cbytes,
           reinterpret_cast<const uint32_t*>(scales + (i % kCopies) * sbytes),
           dx,
           y,
           g_early,
           g_trace,
           i % kCopies,
           codes + ((i + 1) % kCopies) * cbytes,
           g_pf};
    if (g_mode == 0)
      MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(THREADS)), size_t(SMEM), st, fp8_whole_k<0>)(a);
    else if (g_mode == 1)
      MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(THREADS)), size_t(SMEM), st, fp8_whole_k<1>)(a);
    else
      MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(THREADS)), size_t(SMEM), st, fp8_whole_k<2>)(a);
  };
  // The engine's launch on the same bytes (read as layout 2: the values differ, the work does not).
  const GemmArgs a = whole_k_probe_args(N, K, 1, pr.multiProcessorCount, dx, dy2).a;
  auto engine = [&](int i) {
    GemmArgs b = a;
    b.w.data = codes + (i % kCopies) * cbytes;
    b.w.scales = reinterpret_cast<const uint32_t*>(scales + (i % kCopies) * sbytes);
    launch_gemm_whole_k(b, st);
  };
  const int modes = 3;
  for (g_mode = 0; g_mode < modes; ++g_mode) {  // check one launch of each loop against the host
    CHECK(cudaMemsetAsync(dy, 0, N * 4, st));
    fp8(0, dy);
    CHECK(cudaStreamSynchronize(st));
    CHECK(cudaGetLastError());
    std::vector<float> y(N);
    CHECK(cudaMemcpy(y.data(), dy, N * 4, cudaMemcpyDeviceToHost));
    double maxref = 0, maxerr = 0;
    int nan = 0;
    for (int n = 0; n < N; ++n) {
      const double ref = L.ref(0, n);
      if (!std::isfinite(y[n])) ++nan;
      maxref = std::max(maxref, std::fabs(ref));
      maxerr = std::max(maxerr, std::fabs(ref - double(y[n])));
    }
    std::printf("fp8 loop %d check: max |y - host| = %.3g, max |host| = %.3g (relative %.2e), %d non-finite\n", g_mode,
                maxerr, maxref, maxerr / maxref, nan);
  }
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  for (int round = 0; round < 3; ++round) {
    for (int pass = 0; pass < modes + 1; ++pass) {
      g_mode = pass - 1;
      for (int i = 0; i < 32; ++i) pass ? fp8(i, dy) : engine(i);
      CHECK(cudaEventRecord(e0, st));
      for (int i = 0; i < launches; ++i) pass ? fp8(i, dy) : engine(i);
      CHECK(cudaEventRecord(e1, st));
      CHECK(cudaEventSynchronize(e1));
      float ms;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      const double us = 1000.0 * ms / launches;
      std::printf("  round %d %-22s %6.2f us per launch = %.3f TB/s of codes + scales\n", round,
                  pass == 0   ? "engine (bf16 mma.sync)"
                  : pass == 1 ? "fp8 wgmma, wait per pair"
                  : pass == 2 ? "fp8 wgmma, wait per stage"
                              : "fp8 wgmma, pair per set",
                  us, (cbytes + sbytes) / (us * 1e-6) / 1e12);
    }
  }
  // Timeline of the fp8 loop (wait per pair): 32 launches, the last 16 traced (copies 0..15 in order).
  g_trace = 1;
  for (g_mode = 0; g_mode < modes; g_mode += modes - 1) {
    for (int i = 0; i < 32; ++i) fp8(i, dy);
    CHECK(cudaStreamSynchronize(st));
    static unsigned long long tr[16][160][5];
    CHECK(cudaMemcpyFromSymbol(tr, g_tr, sizeof(tr)));
    unsigned long long tmin = ~0ull;
    for (int b = 0; b < blocks; ++b) tmin = std::min(tmin, tr[4][b][0]);
    for (int c = 4; c < 9; ++c) {
      std::printf("fp8 loop %d launch %d:", g_mode, c);
      for (int pt = 0; pt < 5; ++pt) {
        std::vector<double> v;
        for (int b = 0; b < blocks; ++b) v.push_back((double(tr[c][b][pt]) - double(tmin)) * 1e-3);
        std::sort(v.begin(), v.end());
        std::printf("  [%d] %.1f/%.1f/%.1f", pt, v.front(), v[v.size() / 2], v.back());
      }
      std::printf("\n");
    }
  }
  return 0;
}
