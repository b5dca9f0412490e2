// One token tile (1..8 rows) of a 16-bit dense weight on persistent blocks (FastPaths::dense_persist; the F16 lm_head
// at decode): y[0..rows) (+)= x W^T with the decode GEMV's dense products (dense_fragment.cuh: the same mma steps in
// the same order per 16-row tile, so the same bits as gemv_fp4.cu's dense loop without a K split).
//
// Why: the staged dense loop gives each block 8 tiles (128 rows) and launches a block per 128 rows, ~4.6 waves of
// 2 blocks per SM for GLM's 154,880-row lm_head. Every block then waits for its activations to be staged before its
// first weight load, and the last wave runs part full. Here 2 blocks per SM stage the activations once and their
// warps take tiles w, w + W, ... (W warps in all, so the launch sweeps the weight in order), with a ring of U chunk
// loads that runs on across a warp's tiles; the first U chunks load before the wait for the previous kernel.
// On the H100, GLM-4.7-Flash's F16 lm_head [154880, 2048]: M=1 241.8 -> 229.9 us (2.62 -> 2.76 TB/s; a plain read of
// its 634 MB takes 205), M=8 256.6 -> 233.4 (bench/results/cuda-ab-session19-c4b65b3.txt).
#include "backend/cuda/check.h"
#include "backend/cuda/dense_fragment.cuh"
#include "backend/cuda/stage_activations.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kBlocksPerSm = 2;

template <WKind KIND, int U>
__global__ void __launch_bounds__(kWarps * kWarp, kBlocksPerSm) dense_token_kernel(GemmArgs p) {
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp, g = lane >> 2, c = lane & 3;
  const int W = int(gridDim.x) * kWarps, first = int(blockIdx.x) * kWarps + warp;
  const int kcs = p.w.k_chunks, tiles = p.w.n_tiles;
  const int mine = first < tiles ? (tiles - 1 - first) / W + 1 : 0;  // tiles first, first + W, ...
  const int steps = mine * kcs;                                      // (tile, chunk) steps of this warp, in order
  const uint16_t* base = static_cast<const uint16_t*>(p.w.data);
  const bool vec_ok = (p.w.k % 8) == 0 && (reinterpret_cast<uintptr_t>(base) % 16) == 0;
  // Rows g and g + 8 of tile t (clamped to the last row: padding rows are computed, not stored).
  auto rows_of = [&](int t, const uint16_t*& lo, const uint16_t*& hi) {
    lo = base + int64_t(min(t * 16 + g, p.w.n - 1)) * p.w.k;
    hi = base + int64_t(min(t * 16 + g + 8, p.w.n - 1)) * p.w.k;
  };
  // The fetch cursor: tile ft, chunk fch (steps taken in order).
  int ft = first, fch = 0;
  const uint16_t *flo, *fhi;
  rows_of(ft, flo, fhi);
  auto fetch_next = [&](uint4 (&d)[4]) {
    dense_fetch(flo, fhi, fch, c, p.w.k, vec_ok, d);
    if (++fch == kcs) {
      fch = 0;
      ft += W;
      rows_of(ft, flo, fhi);
    }
  };
  uint4 wq[U][4];
#pragma unroll
  for (int i = 0; i < U; ++i)
    if (i < steps) fetch_next(wq[i]);  // the weight does not depend on the previous kernel
  pdl_enter();

  const int rows = min(8, p.m);
  MMFP4_DYN_SMEM(uint16_t, staged);
  stage_activations(p, 0, rows, 0, kcs * 64, staged, 1.0f);
  const bool split = p.prep.xb_lo != nullptr;
  // Activation fragment of k32 block kb (hi or lo halves): row g of the staged rows (zero past them).
  auto xfrag = [&](int kb, bool lo) -> uint4 {
    if (g >= p.stage_rows) return make_uint4(0u, 0u, 0u, 0u);
    return *reinterpret_cast<const uint4*>(staged + (lo ? p.stage_lo : 0) + g * p.stage_stride + kb * 32 + 8 * c);
  };

  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int t = first, ch = 0;  // the consume cursor
  for (int s0 = 0; s0 < steps; s0 += U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (s0 + u >= steps) break;
      uint4 w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) w[i] = wq[u][i];
      if (s0 + u + U < steps) fetch_next(wq[u]);
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        const int kb = 2 * ch + b;
        dense_step<KIND>(acc, w[2 * b], w[2 * b + 1], xfrag(kb, false),
                         split ? xfrag(kb, true) : make_uint4(0u, 0u, 0u, 0u), split);
      }
      if (++ch == kcs) {  // the tile is done: this lane holds D[row g (+8)][token 2c (+1)]
        ch = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int tok = 2 * c + (i & 1), n = t * 16 + g + ((i < 2) ? 0 : 8);
          if (tok < rows && n < p.w.n) {
            float* o = p.y + int64_t(tok) * p.y_stride + n;
            *o = p.accumulate ? *o + acc[i] : acc[i];
          }
          acc[i] = 0.0f;
        }
        t += W;
      }
    }
  }
}

// U = 2 chunks in flight per warp (128 bytes a lane; 86 registers, no stack), 2 blocks per SM. On the H100 (GLM's
// F16 lm_head, docs/cuda.md nineteenth session) U = 3 measured 1 us faster at 118 registers; U = 4 (80 bytes of stack
// at the 128-register cap) and 3 blocks per SM (spills) slower: 270, 238-316, 374 us against 230.
template <WKind KIND>
void launch_kind(const GemmArgs& a, cudaStream_t s) {
  constexpr int U = 2;
  const size_t smem = size_t(staged_bytes(a.stage_rows, a.stage_stride, a.prep.xb_lo != nullptr));
  if (smem > (48 << 10)) smem_opt_in<dense_token_kernel<KIND, U>>(int(kStageMaxBytes), "dense one-tile linear");
  MMFP4_LAUNCH(unsigned(a.persist_blocks), kWarps * kWarp, smem, s, dense_token_kernel<KIND, U>)(a);
}

}  // namespace

bool dense_token_ok(const GemmArgs& a) {
  return (a.w.kind == WKind::F16 || a.w.kind == WKind::Bf16) && a.nt == 1 && a.grid_tiles == 1 && a.stage &&
         a.m <= 8 && !a.tiles.tiles && !a.heads && a.splits == 1 && a.kslices == 1 && !a.tile_major &&
         !a.route.ids && a.stage_stride == a.w.k_chunks * 64 + 32;
}

int dense_token_blocks(const GemmArgs& a, int sms) {
  static_assert(kBlocksPerSm == 2, "dense_token_blocks_max (kernels.h)");
  return int(std::min<int64_t>(dense_token_blocks_max(sms), (a.w.n_tiles + kWarps - 1) / kWarps));
}

void launch_dense_token(const GemmArgs& a, cudaStream_t s) {
  if (!dense_token_ok(a) || a.persist_blocks < 1)
    fail("dense one-tile linear: W [", a.w.n, ", ", a.w.k, "] at ", a.m, " rows is outside the launch's shapes");
  a.w.kind == WKind::F16 ? launch_kind<WKind::F16>(a, s) : launch_kind<WKind::Bf16>(a, s);
  MMFP4_CUDA_LAUNCHED("dense one-tile linear W [", a.w.n, ", ", a.w.k, "] kind ", int(a.w.kind), ", ", a.m, " rows, ",
                      a.persist_blocks, " persistent blocks");
}

}  // namespace mmfp4::cuda
