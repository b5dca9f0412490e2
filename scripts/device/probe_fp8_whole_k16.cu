// Probe (device measurement, not part of the build): probe_fp8_whole_k.cu's fp8 whole-K launch at 16 token rows
// (GLM's dense MLP 20480x2048), against the engine's 16-row launch (its prepare launch, then the whole-K GEMV) in the
// same process: does the fp8 design also bring M=16 within 1.3x of M=1?
//   * A prepare launch writes each row as 4 e4m3 pieces per value (a power-of-two scale per row and 128-column group)
//     in wgmma's B image: per 256-column stage 8 k32 items of [2 core-matrix columns: k 0-15, 16-31][64 columns =
//     16 tokens x 4 pieces][16 bytes], 16 KB; and the scales' inverses [16 rows][16 groups].
//   * The GEMV: the engine's producer (codes of the first stages before the wait, each stage's B image after it,
//     S slots of codes + B), 3 warpgroups of 4 tiles (10 tiles per block: 2 idle warps), one warpgroup set taking every
//     stage (64 accumulators per thread with the chunk pair's partial sums), wgmma m64n64k32 e4m3.
//   * Or (CONV) no prepare launch: the GEMV's consumer warps convert each stage's rows into the slot's B image.
// Checks y (16 rows) of both against a host sum in double. H100, seventeenth session (bench/results/
// cuda-ab-session17-6fcfd80.txt, parts 10 and 12): 13.0 us with the prepare launch (S = 4, 2 stages early) against the
// engine's 15.3-15.4; converting in the GEMV 24 us.
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a [-DPROBE_SLOTS=6] -Isrc -o /tmp/probe_fp8_wk16 \
//     scripts/device/probe_fp8_whole_k16.cu \
//     build-cuda/src/backend/cuda/libmmfp4_cuda.a build-cuda/src/core/libmmfp4_core.a
//   /tmp/probe_fp8_wk16 [launches=320] [stages before the wait=3]   (the engine, then with prepare, then CONV)
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

constexpr int N = 20480, K = 2048, M = 16, NT = N / 16, KCH = K / 64, GROUPS = K / 128, NQ = KCH / 4;
#ifndef PROBE_SLOTS
#define PROBE_SLOTS 4
#endif
constexpr int T = 10, WG = 3, CW = 4 * WG, THREADS = kWarp * (CW + 1), S = PROBE_SLOTS, TILE = 2048;
constexpr int BSTAGE = 8 * 2048;  // one stage's B image
constexpr int SLOT = T * TILE + BSTAGE, ASC_BYTES = M * GROUPS * 4, SC_BYTES = T * GROUPS * 32;
constexpr int RING = ASC_BYTES + SC_BYTES, SMEM = RING + S * SLOT + 8 * (2 * S + 1);

// Row `row`'s pieces of columns col .. col + 3 into a B image whose k32 item 0 is at img.
__device__ __forceinline__ void put_pieces(unsigned char* img, int row, int col, const uint32_t (&pc)[4]) {
  const int item = col / 32, kk = col % 32;
  unsigned char* cm = img + item * 2048 + (kk / 16) * 1024 + kk % 16;
#pragma unroll
  for (int n = 0; n < 4; ++n) *reinterpret_cast<uint32_t*>(cm + 16 * (4 * row + n)) = pc[n];
}

// x [16][2048] -> B images [NQ][BSTAGE] and ainv [16][16]: warp (row, group), lane its 4 columns.
__global__ void prepare_fp8(const float* x, unsigned char* bimg, float* ainv) {
  pdl_enter();
  const int w = int(blockIdx.x * blockDim.x + threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp;
  const int row = w / GROUPS, grp = w % GROUPS;
  const float4 v4 = reinterpret_cast<const float4*>(x + row * K + grp * 128)[lane];
  const float s = group_scale(v4);
  if (lane == 0) ainv[row * GROUPS + grp] = 1.0f / s;
  uint32_t pc[4];
  e4m3_pieces(v4, s, pc);
  put_pieces(bimg, row, grp * 128 + 4 * lane, pc);
}

struct Args {
  const unsigned char* codes;
  const uint32_t* scales;
  const unsigned char* bimg;  // (CONV: unused; x instead)
  const float* ainv;
  const float* x;
  float* y;  // [16][N]
  int early;
};

// CONV: no prepare launch; consumer warps 0..7 convert each stage's 16 x 256 activations into the slot's B image
// (warp w: rows 2 w, 2 w + 1 of the stage's 2 groups), the next stage's loads in flight meanwhile, then a named
// barrier of the consumer warps.
template <bool CONV>
__global__ void __launch_bounds__(THREADS, 1) fp8_whole_k16(Args p) {
  extern __shared__ __align__(128) unsigned char smem[];
  float* ainv = reinterpret_cast<float*>(smem);                              // [16 rows][16 groups]
  uint32_t* scales = reinterpret_cast<uint32_t*>(smem + ASC_BYTES);          // [T][16 groups][8]
  unsigned char* ring = smem + RING;                                         // [S][codes T x 2 KB | B image 16 KB]
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + S * SLOT);
  uint64_t* empty = full + S;
  uint64_t* sfull = empty + S;
  const int tid = int(threadIdx.x), warp = tid / kWarp, lane = tid % kWarp;
  const int t0 = int(blockIdx.x) * T, tiles = min(T, NT - t0);
  if (tid == 0) init_ring_barriers(full, empty, sfull, S, tiles);
  __syncthreads();
  const bool producer = warp == CW;
  auto copy_codes = [&](int q, int slot) {
    for (int w = lane; w < tiles; w += kWarp)
      bulk_copy_g2s(ring + slot * SLOT + w * TILE, p.codes + (int64_t(t0 + w) * KCH + q * 4) * 512, TILE, &full[slot]);
  };
  auto copy_b = [&](int q, int slot) {  // lane 0
    bulk_copy_g2s(ring + slot * SLOT + T * TILE, p.bimg + int64_t(q) * BSTAGE, BSTAGE, &full[slot]);
  };
  if (producer) {
    if (lane == 0) {
      const uint32_t sb = uint32_t(tiles * GROUPS * 32);
      mbar_arrive_expect_tx(sfull, sb + (CONV ? 0 : ASC_BYTES));
      bulk_copy_g2s(scales, p.scales + int64_t(t0) * GROUPS * 8, sb, sfull);
      for (int q = 0; q < p.early; ++q) mbar_arrive_expect_tx(&full[q], uint32_t(tiles * TILE + (CONV ? 0 : BSTAGE)));
    }
    __syncwarp();
    for (int q = 0; q < p.early; ++q) copy_codes(q, q);
  }
  pdl_enter();  // the B images and their scales are the prepare launch's output
  if (producer) {
    if (lane == 0 && !CONV) {
      bulk_copy_g2s(ainv, p.ainv, ASC_BYTES, sfull);
      for (int q = 0; q < p.early; ++q) copy_b(q, q);
    }
    for (int q = p.early; q < NQ; ++q) {
      const int slot = q % S;
      if (lane == 0) {
        mbar_wait(&empty[slot], ((q / S) & 1) ^ 1);
        mbar_arrive_expect_tx(&full[slot], uint32_t(tiles * TILE + (CONV ? 0 : BSTAGE)));
        if (!CONV) copy_b(q, slot);
      }
      __syncwarp();
      copy_codes(q, slot);
    }
    return;
  }
  const int wg = warp / 4, j = 4 * wg + warp % 4;
  const bool real = j < tiles;
  const int g = lane >> 2, c = lane & 3;
  float acc[32] = {};
  float4 xr[2][2];  // CONV, warps 0..7: rows 2 w + r, group 2 q + h of the stage being converted
  auto load_x = [&](int q) {
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        xr[r][h] = reinterpret_cast<const float4*>(p.x + (2 * warp + r) * K + (2 * q + h) * 128)[lane];
  };
  if (CONV && warp < 8) load_x(0);
  mbar_wait(sfull, 0);
  for (int q = 0; q < NQ; ++q) {
    const int slot = q % S;
    if constexpr (CONV) {
      if (warp < 8) {
        unsigned char* img = ring + slot * SLOT + T * TILE;
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float s = group_scale(xr[r][h]);
            if (lane == 0) ainv[(2 * warp + r) * GROUPS + 2 * q + h] = 1.0f / s;
            uint32_t pc[4];
            e4m3_pieces(xr[r][h], s, pc);
            put_pieces(img, 2 * warp + r, h * 128 + 4 * lane, pc);
          }
        if (q + 1 < NQ) load_x(q + 1);
        wg_fence_smem();
      }
      asm volatile("bar.sync 1, %0;\n" ::"n"(CW * kWarp) : "memory");
    }
    mbar_wait(&full[slot], (q / S) & 1);
    const unsigned char* base = ring + slot * SLOT + (real ? j : 0) * TILE;
    const uint64_t desc0 = wg_desc(ring + slot * SLOT + T * TILE, 1024, 128);
#pragma unroll
    for (int pp = 0; pp < 2; ++pp) {
      uint32_t a[4][4];
      decode_chunk_pair(base, pp, lane, real, a);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) wg_pin(a[i][e]);
      float part[32];
      wg_fence();
#pragma unroll
      for (int i = 0; i < 4; ++i) wg_mma_e4m3_n64(part, a[i], desc0 + (((4 * pp + i) * 2048) >> 4), i > 0);
      wg_commit();
      wg_wait<0>();
      const int grp = 2 * q + pp;
      const uint32_t sw = real ? scales[(j * GROUPS + grp) * 8 + g] : 0u;
      const float s_lo = f16_bits_to_f32(uint16_t(sw & 0xFFFF)), s_hi = f16_bits_to_f32(uint16_t(sw >> 16));
#pragma unroll
      for (int jj = 0; jj < 8; ++jj) {  // n8 block jj: columns 8 jj + 2 c (+1) = token 2 jj + c / 2
        const float as = ainv[(2 * jj + c / 2) * GROUPS + grp];
        acc[4 * jj + 0] = fmaf(s_lo * as, part[4 * jj + 0], acc[4 * jj + 0]);
        acc[4 * jj + 1] = fmaf(s_lo * as, part[4 * jj + 1], acc[4 * jj + 1]);
        acc[4 * jj + 2] = fmaf(s_hi * as, part[4 * jj + 2], acc[4 * jj + 2]);
        acc[4 * jj + 3] = fmaf(s_hi * as, part[4 * jj + 3], acc[4 * jj + 3]);
      }
    }
    __syncwarp();
    if (real && lane == 0) mbar_arrive(&empty[slot]);
  }
  // Token 2 jj + c / 2's 4 pieces: columns (1, 2 of) lanes c and c ^ 1 (c even holds pieces 0, 1).
#pragma unroll
  for (int jj = 0; jj < 8; ++jj) {
    float lo = acc[4 * jj] + acc[4 * jj + 1], hi = acc[4 * jj + 2] + acc[4 * jj + 3];
    lo += __shfl_xor_sync(0xffffffffu, lo, 1);
    hi += __shfl_xor_sync(0xffffffffu, hi, 1);
    if (real && c % 2 == 0) {
      const int tok = 2 * jj + c / 2, n0 = (t0 + j) * 16 + g;
      p.y[tok * N + n0] = lo * 64.0f;
      p.y[tok * N + n0 + 8] = hi * 64.0f;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int launches = argc > 1 ? std::atoi(argv[1]) : 320, early = argc > 2 ? std::atoi(argv[2]) : 3;
  constexpr int kCopies = 16;
  cudaDeviceProp pr;
  CHECK(cudaGetDeviceProperties(&pr, 0));
  const long long cbytes = (long long)N * K / 2, sbytes = (long long)NT * GROUPS * 32;
  std::printf("%s: 20480x2048 at 16 tokens, %d launches (each after its prepare launch) with PDL over %d copies\n",
              pr.name, launches, kCopies);
  const Fp8Linear L = make_fp8_linear(N, K, M);
  unsigned char *codes, *scales, *bimg;
  float *dy, *dy2, *ainv;
  CHECK(cudaMalloc(&codes, size_t(cbytes * kCopies)));
  CHECK(cudaMalloc(&scales, size_t(sbytes * kCopies)));
  for (int cpy = 0; cpy < kCopies; ++cpy) {
    CHECK(cudaMemcpy(codes + cpy * cbytes, L.codes.data(), size_t(cbytes), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(scales + cpy * sbytes, L.scales.data(), size_t(sbytes), cudaMemcpyHostToDevice));
  }
  float* dx = to_device(L.x);
  CHECK(cudaMalloc(&dy, size_t(M) * N * 4));
  CHECK(cudaMalloc(&dy2, size_t(M) * N * 4));
  CHECK(cudaMalloc(&bimg, size_t(NQ) * BSTAGE));
  CHECK(cudaMalloc(&ainv, ASC_BYTES));
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  pdl_flag() = true;
  CHECK(cudaFuncSetAttribute(fp8_whole_k16<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  CHECK(cudaFuncSetAttribute(fp8_whole_k16<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  const int blocks = (NT + T - 1) / T;
  bool conv = false;
  auto fp8 = [&](int i) {
    Args a{codes + (i % kCopies) * cbytes, reinterpret_cast<const uint32_t*>(scales + (i % kCopies) * sbytes), bimg,
           ainv, dx, dy, early};
    if (conv) {
      MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(THREADS)), size_t(SMEM), st, fp8_whole_k16<true>)(a);
      return;
    }
    MMFP4_LAUNCH(dim3(M * GROUPS / 4), dim3(128), 0, st, prepare_fp8)(dx, bimg, ainv);
    MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(THREADS)), size_t(SMEM), st, fp8_whole_k16<false>)(a);
  };
  const WholeKProbeArgs eng = whole_k_probe_args(N, K, M, pr.multiProcessorCount, dx, dy2);
  auto engine = [&](int i) {
    GemmArgs b = eng.a;
    b.w.data = codes + (i % kCopies) * cbytes;
    b.w.scales = reinterpret_cast<const uint32_t*>(scales + (i % kCopies) * sbytes);
    launch_prepare_activations(eng.prep, st);
    launch_gemm_whole_k(b, st);
  };
  for (int cv = 0; cv < 2; ++cv) {  // check one launch of each against the host
    conv = cv == 1;
    CHECK(cudaMemsetAsync(dy, 0, size_t(M) * N * 4, st));
    fp8(0);
    CHECK(cudaStreamSynchronize(st));
    CHECK(cudaGetLastError());
    std::vector<float> y(size_t(M) * N);
    CHECK(cudaMemcpy(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost));
    double maxref = 0, maxerr = 0;
    int nonfinite = 0;
    for (int tok = 0; tok < M; ++tok)
      for (int n = 0; n < N; ++n) {
        const double ref = L.ref(tok, n);
        const float v = y[size_t(tok) * N + n];
        if (!std::isfinite(v)) ++nonfinite;
        maxref = std::max(maxref, std::fabs(ref));
        maxerr = std::max(maxerr, std::fabs(ref - double(v)));
      }
    std::printf("fp8 16-row check (%s): max |y - host| = %.3g, max |host| = %.3g (relative %.2e), %d non-finite\n",
                conv ? "rows converted in the GEMV" : "prepare launch", maxerr, maxref, maxerr / maxref, nonfinite);
  }
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  for (int round = 0; round < 3; ++round)
    for (int pass = 0; pass < 3; ++pass) {
      conv = pass == 2;
      for (int i = 0; i < 32; ++i) pass ? fp8(i) : engine(i);
      CHECK(cudaEventRecord(e0, st));
      for (int i = 0; i < launches; ++i) pass ? fp8(i) : engine(i);
      CHECK(cudaEventRecord(e1, st));
      CHECK(cudaEventSynchronize(e1));
      float ms;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      std::printf("  round %d %-40s %6.2f us per launch pair\n", round,
                  pass == 0   ? "engine prepare + whole-K GEMV"
                  : pass == 1 ? "fp8 prepare + wgmma m64n64k32 GEMV"
                              : "fp8 GEMV converting its rows itself",
                  1000.0 * ms / launches);
    }
  return 0;
}
