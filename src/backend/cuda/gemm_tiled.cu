// y (+)= x W^T for MMFP4 weights and many tokens (M > 16: prefill, batched decode, MoE experts with many rows):
// a tiled tensor-core GEMM (FastPaths::gemm). The skinny kernel of gemv_fp4.cu gives each warp 16 weight rows and
// all of a token tile, so at large M it re-reads every weight chunk once per 64-token tile and keeps one block per
// SM; here a block of 8 warps owns a 128-row x BN-token tile of the output and streams K through shared memory:
//   * a 3-stage cp.async pipeline brings, per 64-column chunk, the block's 8 code tiles (4 KB, the 16-byte lane
//     fragments of repack.h), their group scales and the BN tokens' prepared activation fragments (BN x 128 bytes,
//     and as much again for the low halves) into shared memory while the tensor cores work on an earlier chunk;
//   * warp (wr, wc) owns weight tiles 2wr, 2wr + 1 and n8 token tiles [wc * BN/16, +BN/16): each dequantised A
//     fragment is used BN/16 times and each activation fragment twice, from registers;
//   * scales multiply float32 partial sums per group (exact, as the skinny kernel), and split-K with the same
//     deterministic "last block adds the splits in order" reduction fills the SMs when there are few tiles.
// Every fragment read from shared memory is 16 consecutive bytes per lane, so no bank conflicts and no ldmatrix.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kStages = 3;
constexpr int kTiles = 8;                       // 16-row weight tiles per block (128 rows)
constexpr int kCodeBytes = kTiles * 512;        // one chunk of the block's code tiles
constexpr int kScaleBytes = kTiles * 2 * 32;    // [tile][32-column half][8 words]

template <int BN, bool SX>
struct Layout {
  static constexpr int kXBytes = (BN / 8) * 2 * 512;  // [n8 tile][k32 half][32 lanes][16 bytes]
  static constexpr int kStage = kCodeBytes + kScaleBytes + kXBytes * (SX ? 2 : 1);
  static constexpr int kBytes = kStages * kStage;
};

template <int BN, bool SX, int LAYOUT>
__global__ void __launch_bounds__(256, 1) gemm_tiled_kernel(GemmArgs p) {
  pdl_enter();
  using L = Layout<BN, SX>;
  constexpr int NTW = BN / 16;  // n8 token tiles per warp
  MMFP4_DYN_SMEM(uint8_t, smem);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane >> 2, c = lane & 3;
  const int wr = warp & 3, wc = warp >> 2;

  const int tile = blockIdx.y;
  int expert, row0, rows;
  if (!token_tile(p, tile, BN, expert, row0, rows)) return;
  const int rb = blockIdx.x, split = blockIdx.z, tile0 = rb * kTiles;
  const int kc0 = split * p.cps, kc1 = min(p.w.k_chunks, kc0 + p.cps), nk = max(kc1 - kc0, 0);
  const uint4* wbase = static_cast<const uint4*>(p.w.data) + expert * p.w.expert_stride;
  const uint32_t* sbase = p.w.scales + expert * p.w.expert_scale_stride;
  const int64_t xoff = int64_t(row0 / 8) * p.kb32 * 32;
  const uint4* xh = static_cast<const uint4*>(p.xb) + xoff;
  const uint4* xl = SX ? static_cast<const uint4*>(p.xb_lo) + xoff : nullptr;

  auto load_stage = [&](int kc, int st) {
    uint8_t* base = smem + st * L::kStage;
    {  // codes: thread i copies lane i % 32 of tile i / 32 (tiles past the weight's rows are never stored)
      const int j = threadIdx.x >> 5, l = threadIdx.x & 31, nt = tile0 + j;
      if (nt < p.w.n_tiles) cp_async16(base + j * 512 + l * 16, wbase + (int64_t(nt) * p.w.k_chunks + kc) * 32 + l);
    }
    if (threadIdx.x < 32) {  // scales: tile j, half b, 8 words as two 16-byte pieces
      const int j = threadIdx.x >> 2, b = (threadIdx.x >> 1) & 1, h = threadIdx.x & 1, nt = tile0 + j;
      const int grp = (kc * 64 + 32 * b) / p.w.group_size;
      if (nt < p.w.n_tiles)
        cp_async16(base + kCodeBytes + (j * 2 + b) * 32 + h * 16, sbase + (int64_t(nt) * p.w.groups + grp) * 8 + h * 4);
    }
    for (int i = threadIdx.x; i < (BN / 8) * 2 * 32; i += blockDim.x) {  // activation fragments (hi, lo)
      const int t = i >> 6, b = (i >> 5) & 1, l = i & 31;
      const int64_t src = (int64_t(t) * p.kb32 + 2 * kc + b) * 32 + l;
      cp_async16(base + kCodeBytes + kScaleBytes + i * 16, xh + src);
      if constexpr (SX) cp_async16(base + kCodeBytes + kScaleBytes + L::kXBytes + i * 16, xl + src);
    }
  };

  float acc[2][NTW][4], part[2][NTW][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int t = 0; t < NTW; ++t)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][t][i] = 0.0f;
  const bool per_chunk = p.w.group_size >= 64;  // both halves of a chunk in one group: one scale step per chunk

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < nk) load_stage(kc0 + s, s);
    cp_async_commit();
  }
  for (int i = 0; i < nk; ++i) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // chunk i is in; everyone is done with chunk i - 1, whose stage is refilled below
    if (i + kStages - 1 < nk) load_stage(kc0 + i + kStages - 1, (i + kStages - 1) % kStages);
    cp_async_commit();
    const uint8_t* base = smem + (i % kStages) * L::kStage;
    uint32_t q[2][4];
    float sc[2][2][2];  // [mt][b][row g, g + 8]
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      const uint4 v = *reinterpret_cast<const uint4*>(base + (2 * wr + mt) * 512 + lane * 16);
      q[mt][0] = v.x, q[mt][1] = v.y, q[mt][2] = v.z, q[mt][3] = v.w;
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        const uint32_t sw = *reinterpret_cast<const uint32_t*>(base + kCodeBytes + ((2 * wr + mt) * 2 + b) * 32 + g * 4);
        sc[mt][b][0] = f16_bits_to_f32(uint16_t(sw & 0xFFFF));
        sc[mt][b][1] = f16_bits_to_f32(uint16_t(sw >> 16));
      }
    }
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      if (b == 0 || !per_chunk) {
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int t = 0; t < NTW; ++t)
#pragma unroll
            for (int e = 0; e < 4; ++e) part[mt][t][e] = 0.0f;
      }
      uint32_t a[2][2][4];  // [mt][mma step][register]
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        fp4_frag<LAYOUT>(q[mt][2 * b], a[mt][0]);
        fp4_frag<LAYOUT>(q[mt][2 * b + 1], a[mt][1]);
      }
#pragma unroll
      for (int t = 0; t < NTW; ++t) {
        const int xi = ((wc * NTW + t) * 2 + b) * 32 + lane;
        const uint4 bh = *reinterpret_cast<const uint4*>(base + kCodeBytes + kScaleBytes + xi * 16);
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          mma_bf16_16816(part[mt][t], a[mt][0], bh.x, bh.y);
          mma_bf16_16816(part[mt][t], a[mt][1], bh.z, bh.w);
        }
        if constexpr (SX) {
          const uint4 bl = *reinterpret_cast<const uint4*>(base + kCodeBytes + kScaleBytes + L::kXBytes + xi * 16);
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            mma_bf16_16816(part[mt][t], a[mt][0], bl.x, bl.y);
            mma_bf16_16816(part[mt][t], a[mt][1], bl.z, bl.w);
          }
        }
      }
      if (b == 1 || !per_chunk) {
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int t = 0; t < NTW; ++t) {
            acc[mt][t][0] = fmaf(sc[mt][b][0], part[mt][t][0], acc[mt][t][0]);
            acc[mt][t][1] = fmaf(sc[mt][b][0], part[mt][t][1], acc[mt][t][1]);
            acc[mt][t][2] = fmaf(sc[mt][b][1], part[mt][t][2], acc[mt][t][2]);
            acc[mt][t][3] = fmaf(sc[mt][b][1], part[mt][t][3], acc[mt][t][3]);
          }
      }
    }
  }
  cp_async_wait<0>();  // no copy may still target shared memory when the block exits

  // Epilogue: lane holds D[weight row 16 (tile0 + 2wr + mt) + g (+8)][token 8 (wc NTW + t) + 2c (+1)]; without
  // split-K straight to y, else to this split's partials and the last block of the split group adds them in order.
  const int rbs = gridDim.x, npad = rbs * kTiles * 16;
  float* mine = p.splits > 1 ? p.partial + (int64_t(tile) * p.splits + split) * BN * npad : nullptr;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int t = 0; t < NTW; ++t)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int n = (tile0 + 2 * wr + mt) * 16 + g + (e >= 2 ? 8 : 0);
        const int tok = (wc * NTW + t) * 8 + 2 * c + (e & 1);
        if (tok < rows) tiled_store(p, mine, npad, row0, tok, n, acc[mt][t][e]);
      }
  tiled_finish(p, tile, BN, npad, rows, row0);
}

template <int BN, bool SX, int LAYOUT>
void launch_bn(const GemmArgs& a, cudaStream_t s) {
  using L = Layout<BN, SX>;
  smem_opt_in<gemm_tiled_kernel<BN, SX, LAYOUT>>(L::kBytes, "tiled GEMM");
  const dim3 grid((a.w.n_tiles + kTiles - 1) / kTiles, a.grid_tiles, a.splits);
  MMFP4_LAUNCH(grid, 256, L::kBytes, s, gemm_tiled_kernel<BN, SX, LAYOUT>)(a);
}

}  // namespace

int gemm_tiled_smem(int bn, bool split_x) {
  return bn == 64 ? (split_x ? Layout<64, true>::kBytes : Layout<64, false>::kBytes)
                  : (split_x ? Layout<128, true>::kBytes : Layout<128, false>::kBytes);
}

void launch_gemm_tiled(const GemmArgs& a, cudaStream_t s) {
  if (a.w.kind != WKind::Fp4 || a.heads || (a.nt != 8 && a.nt != 16) || a.w.group_size % 32 != 0)
    fail("tiled GEMM: MMFP4 (groups of 32k), plain or MoE tiles, 64 or 128 tokens per tile");
  const bool sx = a.xb_lo != nullptr, v2 = a.w.layout == 2;
  if (a.nt == 8) {
    if (v2) sx ? launch_bn<64, true, 2>(a, s) : launch_bn<64, false, 2>(a, s);
    else sx ? launch_bn<64, true, 1>(a, s) : launch_bn<64, false, 1>(a, s);
  } else {
    if (v2) sx ? launch_bn<128, true, 2>(a, s) : launch_bn<128, false, 2>(a, s);
    else sx ? launch_bn<128, true, 1>(a, s) : launch_bn<128, false, 1>(a, s);
  }
  MMFP4_CUDA_LAUNCHED("linear (tiled) W [", a.w.n, ", ", a.w.k, "], ", a.m, " rows, ", 8 * a.nt, " per tile, ",
                      a.grid_tiles, " token tiles, ", a.splits, " splits of ", a.cps, " chunks");
}

}  // namespace mmfp4::cuda
