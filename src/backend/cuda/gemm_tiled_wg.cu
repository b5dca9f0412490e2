// y (+)= x W^T for MMFP4 weights and 32- or 64-token tiles on Hopper's wgmma (FastPaths::wgmma, sm_90a): the tiled
// GEMM of gemm_tiled.cu (batched decode of 17..64 tokens, MoE tiles of 64 rows) with its tensor work issued per
// warpgroup instead of per warp:
//   * block = 8 warps = 128 weight rows x BN tokens; warp w streams weight tile w (16 rows), warpgroup h = w / 4 owns
//     rows [64 h, 64 h + 64) and every token. Per 64-column chunk a warp decodes its 4 code words into the A
//     fragments of 4 k16 steps (in registers, as gemm_tiled.cu) and the warpgroup issues 4 wgmma m64nNk16 whose B
//     is the chunk's activations in shared memory: N = 2 BN columns (the tokens' hi halves, then their lo halves), or
//     BN with one bf16 activation. No B fragment loads, and 4 instead of 2 BN mma instructions per warp and chunk.
//   * the same 3-stage cp.async pipeline brings each chunk's code tiles, scales and activations; the activations are
//     prepared in the wgmma core-matrix order (PrepArgs::wg_order), so that a 16-byte copy is a core-matrix row and
//     shared memory holds [k group (8)][n8 block (N / 8)][8 rows x 16 bytes] (wgmma.cuh: leading byte offset 16 N,
//     stride byte offset 128);
//   * groups of >= 64 columns: a chunk's sums are scaled once, hi + lo added first; split-K as gemm_tiled.cu.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/wgmma.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kStages = 3;
constexpr int kTiles = 8;                   // 16-row weight tiles per block (128 rows): warp w streams tile w
constexpr int kCodeBytes = kTiles * 512;    // one chunk of the block's code tiles
constexpr int kScaleBytes = kTiles * 32;    // [tile][8 words]: the chunk's group scale of rows g (low), g + 8 (high)

template <int BN, bool SX>
struct WgLayout {
  static constexpr int kN = SX ? 2 * BN : BN;    // wgmma columns
  static constexpr int kXBytes = kN * 64 * 2;    // [k group][n8 block][128 bytes]
  static constexpr int kStage = kCodeBytes + kScaleBytes + kXBytes;
  static constexpr int kBytes = kStages * kStage;
};

// BN tokens per block (32 or 64).
template <int BN, bool SX, int LAYOUT>
__global__ void __launch_bounds__(256, 2) gemm_tiled_wg_kernel(GemmArgs p) {
  pdl_enter();
  using L = WgLayout<BN, SX>;
  constexpr int N = L::kN, NB = BN / 8;  // wgmma columns; n8 blocks of tokens
  MMFP4_DYN_SMEM(uint8_t, smem);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane >> 2, c = lane & 3;

  const int tile = blockIdx.y;
  int expert, row0, rows;
  if (!token_tile(p, tile, BN, expert, row0, rows)) return;
  const int rb = blockIdx.x, split = blockIdx.z, tile0 = rb * kTiles;
  const int kc0 = split * p.cps, kc1 = min(p.w.k_chunks, kc0 + p.cps), nk = max(kc1 - kc0, 0);
  const uint4* wbase = static_cast<const uint4*>(p.w.data) + expert * p.w.expert_stride;
  const uint32_t* sbase = p.w.scales + expert * p.w.expert_scale_stride;
  const int64_t xoff = int64_t(row0 / 8) * p.kb32 * 32;  // item (token tile, k32 block): 32 x 16 bytes
  const uint4* xh = static_cast<const uint4*>(p.xb) + xoff;
  const uint4* xl = SX ? static_cast<const uint4*>(p.xb_lo) + xoff : nullptr;

  auto load_stage = [&](int kc, int st) {
    uint8_t* base = smem + st * L::kStage;
    {  // codes: thread i copies lane i % 32 of tile i / 32 (a tile past the weight's rows: the last again, unstored)
      const int j = threadIdx.x >> 5, l = threadIdx.x & 31, nt = min(tile0 + j, p.w.n_tiles - 1);
      cp_async16(base + j * 512 + l * 16, wbase + (int64_t(nt) * p.w.k_chunks + kc) * 32 + l);
    }
    if (threadIdx.x < 2 * kTiles) {  // scales: tile j, the two 16-byte halves of its 8 words
      const int j = threadIdx.x >> 1, h = threadIdx.x & 1, nt = min(tile0 + j, p.w.n_tiles - 1);
      const int grp = kc * 64 / p.w.group_size;
      cp_async16(base + kCodeBytes + j * 32 + h * 16, sbase + (int64_t(nt) * p.w.groups + grp) * 8 + h * 4);
    }
    // Activations: core matrix m = (4 kb + G) (N / 8) + j of the chunk (k32 block kb, k group G, n8 block j: hi
    // token tile j, or lo token tile j - NB) is 128 bytes of the prepared item (tile, 2 kc + kb) at 128 G.
    for (int i = threadIdx.x; i < N * 8; i += blockDim.x) {
      const int piece = i & 7, m = i >> 3, j = m % (N / 8), kg = m / (N / 8);
      const bool lo = SX && j >= NB;
      const uint4* src = (lo ? xl : xh) + (int64_t(lo ? j - NB : j) * p.kb32 + 2 * kc + (kg >> 2)) * 32 + (kg & 3) * 8;
      cp_async16(base + kCodeBytes + kScaleBytes + i * 16, src + piece);
    }
  };

  float acc[NB][4];
#pragma unroll
  for (int t = 0; t < NB; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[t][e] = 0.0f;
  float part[N / 2];

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < nk) load_stage(kc0 + s, s);
    cp_async_commit();
  }
  for (int i = 0; i < nk; ++i) {
    cp_async_wait<kStages - 2>();
    wg_fence_smem();  // the copies (generic proxy) before wgmma's reads (async proxy)
    __syncthreads();  // chunk i is in; every wgmma of chunk i - 1 has completed (waited below), so its stage is free
    if (i + kStages - 1 < nk) load_stage(kc0 + i + kStages - 1, (i + kStages - 1) % kStages);
    cp_async_commit();
    const uint8_t* base = smem + (i % kStages) * L::kStage;
    const uint4 q = *reinterpret_cast<const uint4*>(base + warp * 512 + lane * 16);
    const uint32_t sw = *reinterpret_cast<const uint32_t*>(base + kCodeBytes + warp * 32 + g * 4);
    uint32_t a[4][4];
    fp4_frag<LAYOUT>(q.x, a[0]);
    fp4_frag<LAYOUT>(q.y, a[1]);
    fp4_frag<LAYOUT>(q.z, a[2]);
    fp4_frag<LAYOUT>(q.w, a[3]);
#pragma unroll
    for (int s = 0; s < 4; ++s)
#pragma unroll
      for (int r = 0; r < 4; ++r) wg_pin(a[s][r]);
    const uint64_t desc = wg_desc(base + kCodeBytes + kScaleBytes, 16 * N, 128);
    wg_fence();
    // Word s of the chunk is k16 step s: k groups 2s, 2s + 1, 32 N s bytes in.
#pragma unroll
    for (int s = 0; s < 4; ++s) wg_mma<N>(part, a[s], desc + uint64_t(2 * N * s), s > 0);
    wg_commit();
    wg_wait<0>();
    const float s_lo = f16_bits_to_f32(uint16_t(sw & 0xFFFF)), s_hi = f16_bits_to_f32(uint16_t(sw >> 16));
#pragma unroll
    for (int t = 0; t < NB; ++t)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float v = SX ? part[4 * t + e] + part[4 * (t + NB) + e] : part[4 * t + e];
        acc[t][e] = fmaf(e < 2 ? s_lo : s_hi, v, acc[t][e]);
      }
  }
  cp_async_wait<0>();  // no copy may still target shared memory when the block exits

  // Epilogue: lane holds D[weight row 16 (tile0 + warp) + g (+8)][token 8 t + 2c (+1)]; as gemm_tiled.cu.
  const int rbs = gridDim.x, npad = rbs * kTiles * 16;
  float* mine = p.splits > 1 ? p.partial + (int64_t(tile) * p.splits + split) * BN * npad : nullptr;
#pragma unroll
  for (int t = 0; t < NB; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = (tile0 + warp) * 16 + g + (e >= 2 ? 8 : 0), tok = t * 8 + 2 * c + (e & 1);
      if (tok < rows) tiled_store(p, mine, npad, row0, tok, n, acc[t][e]);
    }
  tiled_finish(p, tile, BN, npad, rows, row0);
}

template <int BN, bool SX, int LAYOUT>
void launch_wg(const GemmArgs& a, cudaStream_t s) {
  using L = WgLayout<BN, SX>;
  smem_opt_in<gemm_tiled_wg_kernel<BN, SX, LAYOUT>>(L::kBytes, "tiled GEMM (wgmma)");
  const dim3 grid((a.w.n_tiles + kTiles - 1) / kTiles, a.grid_tiles, a.splits);
  MMFP4_LAUNCH(grid, 256, L::kBytes, s, gemm_tiled_wg_kernel<BN, SX, LAYOUT>)(a);
}

// Whether the pass of this file that runs on the current device was compiled with wgmma (nvcc for sm_90a).
__global__ void wgmma_build_kernel(int* out) {
  pdl_enter();
#ifdef MMFP4_WGMMA_BUILD
  *out = 1;
#else
  *out = 0;
#endif
}

}  // namespace

bool gemm_tiled_wg_weight_ok(const GemmWeight& w) { return w.kind == WKind::Fp4 && w.group_size % 64 == 0; }

bool gemm_tiled_wg_ok(const GemmArgs& a) {
  return gemm_tiled_wg_weight_ok(a.w) && !a.heads && (a.nt == 4 || a.nt == 8);
}

void launch_gemm_tiled_wg(const GemmArgs& a, cudaStream_t s) {
  if (!gemm_tiled_wg_ok(a)) fail("tiled GEMM (wgmma): MMFP4 in groups of 64k, plain or MoE tiles of 32 or 64 tokens");
  const bool sx = a.xb_lo != nullptr, v2 = a.w.layout == 2;
  if (a.nt == 4) {
    if (v2) sx ? launch_wg<32, true, 2>(a, s) : launch_wg<32, false, 2>(a, s);
    else sx ? launch_wg<32, true, 1>(a, s) : launch_wg<32, false, 1>(a, s);
  } else {
    if (v2) sx ? launch_wg<64, true, 2>(a, s) : launch_wg<64, false, 2>(a, s);
    else sx ? launch_wg<64, true, 1>(a, s) : launch_wg<64, false, 1>(a, s);
  }
  MMFP4_CUDA_LAUNCHED("linear (tiled, wgmma) W [", a.w.n, ", ", a.w.k, "], ", a.m, " rows, ", a.grid_tiles,
                      " token tiles, ", a.splits, " splits of ", a.cps, " chunks");
}

bool wgmma_available(cudaStream_t s) {
  int* d = nullptr;
  int h = 0;
  if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) return false;
  MMFP4_LAUNCH(dim3(1), dim3(1), 0, s, wgmma_build_kernel)(d);
  const bool ok = cudaMemcpyAsync(&h, d, sizeof(int), cudaMemcpyDeviceToHost, s) == cudaSuccess &&
                  cudaStreamSynchronize(s) == cudaSuccess;
  cudaFree(d);
  return ok && h == 1;
}

}  // namespace mmfp4::cuda
