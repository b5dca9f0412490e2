// y (+)= x W^T on tensor cores for MMFP4 and 16-bit dense weights: the path of every linear layer on the GPU.
//
// Roles are swapped with respect to nn.Linear: the weight is the mma A operand (16 weight rows per m16 tile) and
// the activations are B (8 tokens per n8 tile), so a decode step with 1..8 tokens wastes at most 7/8 of an n8 tile
// instead of 15/16 of an m16 tile, and the weight fragments come straight from global memory into registers:
//   * MMFP4 weights are in the tile layout of repack.h: one 16-byte load per lane is the A fragments of 4 mma
//     steps. Codes become bf16 in registers (e2m1x2_to_bf16x2: exact), and the group scale multiplies the float32
//     partial sum of each 32-column block (exact, unlike a scale folded into a bf16 weight). Nothing dequantized
//     ever touches memory. The decode loop (RAW, gemm_mma_raw_ok) skips the bf16 multiply that makes the codes
//     exact values: it feeds the placed bits (value x 2^-126) and scales activations and sums by powers of two.
//   * Dense bf16/f16 weights are read as stored: a lane loads 16 bytes of row g and of row g + 8; the column order
//     this gives an mma step is the same permutation the activations use (kernels.h, PrepArgs).
// Weight loads bypass L1 (ld_stream): each weight byte is used by exactly one warp, once, while the activation
// fragments are re-read by all 8 warps of a block and stay in L1.
//
// Parallelism: a block is 8 warps = 128 weight rows; each warp streams its 16 rows over the block's range of
// 64-column chunks with U loads in flight. Splitting K across blocks (grid.z) fills the 132 SMs when N is small;
// the last block of a row block to finish (an atomic counter) adds the splits' partial sums in split order, so
// results do not depend on timing (repeated runs are bit-identical). Decode launches that fit one wave split K
// across the warps of a block instead (GemmArgs::kslices: 2, 4 or 8 warps per 16-row tile; one or two token tiles
// staged over all of K), summed in shared memory in slice order; token tiles of <= 4 rows take each token's hi and
// lo halves in neighbouring mma columns (GemmArgs::pair).
#include <cstdlib>

#include "backend/cuda/activations.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/dense_fragment.cuh"
#include "backend/cuda/moe_route.cuh"
#include "backend/cuda/stage_activations.cuh"
#include "core/env.h"

namespace mmfp4::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kBlockRows = 16 * kWarps;

// Decode shapes are register-capped so that enough warps share an SM; the configurations measured best on the
// H100 (docs/cuda.md; launch_nt below): MMFP4 with one token tile in batches of U = 8 loads per warp at 24 warps per
// SM (80 registers; MoE tiles: U = 4 at 32 warps), two token tiles U = 2 pipelined at 24 warps; the 16-bit dense
// stream with its ring of loads at 16 warps per SM (128 registers).
// A warp's share of a launch: weight tile nt, chunks [kc0, kc1) of the block's range [kb0, kb1) (the K split
// blockIdx.z). SLICED (the raw loop of one or two token tiles, the only one that adds K slices): its slice of the
// tile (GemmArgs::kslices) too; else each warp has a tile of its own over the block's range.
struct WarpWork {
  int nt, kc0, kc1, kb0, kb1;
};
template <bool SLICED>
__device__ __forceinline__ WarpWork warp_work(const GemmArgs& p, int warp, int rb = int(blockIdx.x)) {
  WarpWork w;
  w.kb0 = int(blockIdx.z) * p.cps;
  w.kb1 = min(p.w.k_chunks, w.kb0 + p.cps);
  if constexpr (SLICED) {
    const int ks = p.kslices, slice = warp % ks, per = ks == 1 ? p.cps : p.slice_chunks;
    w.nt = rb * (kWarps / ks) + warp / ks;
    w.kc0 = min(w.kb1, w.kb0 + slice * per);
    w.kc1 = min(w.kb1, w.kc0 + per);
  } else {
    w.nt = rb * kWarps + warp;
    w.kc0 = w.kb0;
    w.kc1 = w.kb1;
  }
  return w;
}

// The router launch's epilogue (GemmArgs::route): warp w routes token rows w, w + 8, ... of the tile. Not inlined, so
// that its registers do not count against the GEMM loop's.
__device__ MMFP4_NOINLINE void route_tile_rows(RouteArgs a, const float* yb, int64_t y_stride, int out0, int rows) {
  for (int r = int(threadIdx.x) / kWarp; r < rows; r += kWarps)
    route_token_warp<kBlockRows / 32>(yb + int64_t(out0 + r) * y_stride, a, out0 + r, nullptr);
}

template <WKind KIND, int NT, int U, bool STAGE, int LAYOUT, int MINB, bool PIPE, bool RAW, bool PAIR>
__global__ void __launch_bounds__(256, MINB) gemm_mma_kernel(GemmArgs p) {
  static_assert(!RAW || (KIND == WKind::Fp4 && STAGE && LAYOUT == 2 && !PIPE && U % 2 == 0), "raw loop: see raw_ok");
  static_assert(!PAIR || (RAW && NT == 1), "paired hi/lo columns: the raw loop of one token tile (GemmArgs::pair)");
  // Staged MMFP4 plain linears (decode) load their first kPre weight chunks before waiting for the previous kernel:
  // weights never change during a step, so their DRAM latency overlaps the previous kernel's tail (pdl_enter).
  // (Two, not U: more registers live across the staging would spill; four in the raw loop built for 2 blocks per
  // SM, whose register cap leaves room.)
  // MoE tiles and per-head launches learn their expert (head) only after the wait: theirs load then, while the
  // activations are staged.
  constexpr int kPre = U < 2 ? U : RAW && MINB <= 2 && U >= 4 ? 4 : 2;
  uint4 wpre[kPre];
  bool prefetched = false;
  int pre_expert = 0;  // the expert whose chunks wpre holds
  // The first kPre chunks of warp work w of weight "expert" e (an expert's or a head's weights).
  auto load_first = [&](const WarpWork& w, int e) {
    const uint4* w0 = static_cast<const uint4*>(p.w.data) + e * p.w.expert_stride +
                      (int64_t(w.nt) * p.w.k_chunks + w.kc0) * 32 + threadIdx.x % kWarp;
#pragma unroll
    for (int u = 0; u < kPre; ++u)
      if (w.kc0 + u < w.kc1) wpre[u] = ld_stream(w0 + u * 32);
    prefetched = true;
    pre_expert = e;
  };
  if constexpr (STAGE && KIND == WKind::Fp4) {
    const WarpWork w = warp_work<RAW>(p, int(threadIdx.x) / kWarp);
    if (w.nt < p.w.n_tiles) {
      if (!p.tiles.tiles && !p.heads)
        load_first(w, 0);
      else if (p.tiles.direct && int(blockIdx.y) == p.tiles.known_slot && p.tiles.known_expert >= 0 &&
               p.tiles.known_expert < p.tiles.n_experts)
        load_first(w, p.tiles.known_expert);  // the shared expert's slot (TileTable::known_slot)
    }
  }
  pdl_enter();
  constexpr int TM = 8 * NT;
  constexpr bool kFp4 = KIND == WKind::Fp4;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int g = lane >> 2, c = lane & 3;

  // Grid: (row block, token tile, K split), or token tile first (GemmArgs::tile_major: only in the loops of 16-bit
  // weights without staging, kTileMajor).
  constexpr bool kTileMajor = !STAGE && KIND != WKind::Fp4;
  const bool tmaj = kTileMajor && p.tile_major;

  // Token tile: rows [row0, row0 + rows) of the activations / output.
  const int tile = tmaj ? int(blockIdx.x) : int(blockIdx.y);
  int expert = 0, row0, rows;
  float* yb = p.y;  // output row of token tile row i: yb + (out0 + i) * y_stride
  int out0;
  if (p.heads) {
    // Per-head weights (MLA W_UV): tile -> (head, token sub-tile); activations head-major, output token-major.
    const int tph = (p.head_tokens + TM - 1) / TM, h = tile / tph, sub = tile % tph;
    expert = h;
    row0 = h * p.head_tpad + sub * TM;
    rows = min(TM, p.head_tokens - sub * TM);
    yb = p.y + int64_t(h) * p.y_head_stride;
    out0 = sub * TM;
  } else if (!token_tile(p, tile, TM, expert, row0, rows)) {
    return;
  }
  if (!p.heads) out0 = row0;
  const int rb = tmaj ? blockIdx.y : blockIdx.x, split = blockIdx.z;
  const WarpWork ww = warp_work<RAW>(p, warp, rb);
  const int nt = ww.nt, kc0 = ww.kc0, kc1 = ww.kc1;

  float acc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[t][i] = 0.0f;

  if constexpr (STAGE && kFp4)
    if ((!prefetched || pre_expert != expert) && (p.tiles.tiles || p.heads) && nt < p.w.n_tiles) load_first(ww, expert);
  MMFP4_DYN_SMEM(uint16_t, staged);
  if constexpr (STAGE)
    stage_activations(p, row0, rows, ww.kb0 * 64, (ww.kb1 - ww.kb0) * 64, staged, RAW ? kRawActScale : 1.0f);

  if (nt < p.w.n_tiles) {
    // Activation fragments: [token tile][k32 block][lane] of 16 bytes; the low halves (if split) at the same offsets.
    const int64_t xoff = (int64_t(row0 / 8) * p.kb32) * 32 + lane;
    const uint4* xp = STAGE ? nullptr : static_cast<const uint4*>(p.xb) + xoff;
    const uint4* xq = STAGE ? nullptr : p.xb_lo ? static_cast<const uint4*>(p.xb_lo) + xoff : nullptr;
    const bool split_x = STAGE ? p.prep.xb_lo != nullptr : xq != nullptr;
    // B fragment of n8 tile t, k32 block kb (hi or lo halves): from the prepared buffer, or from the staged rows
    // (row 8t + g, columns 32 kb + 8c .. + 7; rows past the staged ones are zero).
    auto xfrag = [&](int t, int kb, bool lo) -> uint4 {
      if constexpr (STAGE) {
        const int r = 8 * t + g;
        if (r >= p.stage_rows) return make_uint4(0u, 0u, 0u, 0u);
        return *reinterpret_cast<const uint4*>(staged + (lo ? p.stage_lo : 0) +
                                               r * p.stage_stride + (kb - 2 * ww.kb0) * 32 + 8 * c);
      } else {
        return __ldg((lo ? xq : xp) + (int64_t(t) * p.kb32 + kb) * 32);
      }
    };
    if constexpr (RAW) {
      // The decode loop (raw_ok): staged hi + lo activations (scaled by kRawActScale), layout-2 tiles decoded
      // without the HMUL2 (fp4_fragment_raw), groups of 2^cshift chunks (>= 2) with splits starting on a group,
      // so each pair of chunks shares one scale. Rows past the staged ones read the last staged row: their
      // products land in output columns of tokens that are never stored. PAIR (GemmArgs::pair): lane column g is
      // token g / 2's hi (g even) or lo (g odd) half, one mma per step.
      const int cshift = p.gshift - 1;
      const uint4* wp = static_cast<const uint4*>(p.w.data) + expert * p.w.expert_stride +
                        (int64_t(nt) * p.w.k_chunks + kc0) * 32 + lane;
      const uint32_t* sp = p.w.scales + expert * p.w.expert_scale_stride + int64_t(nt) * p.w.groups * 8 + g;
      const int S = p.stage_lo;
      const uint16_t* xrow[NT];
      const uint16_t* xs = staged + (kc0 - ww.kb0) * 64 + 8 * c;  // the warp's first chunk in the staged range
      if constexpr (PAIR) {
        xrow[0] = xs + ((g & 1) ? S : 0) + min(g >> 1, p.stage_rows - 1) * p.stage_stride;
      } else {
#pragma unroll
        for (int t = 0; t < NT; ++t) xrow[t] = xs + min(8 * t + g, p.stage_rows - 1) * p.stage_stride;
      }
      uint4 wv[U];
#pragma unroll
      for (int u = 0; u < kPre; ++u) wv[u] = wpre[u];
      for (int kc = kc0; kc < kc1; kc += U) {
        const int j0 = kc - kc0;
        uint32_t sw[U / 2];
#pragma unroll
        for (int u = 0; u < U; ++u)
          if (kc + u < kc1 && (j0 > 0 || u >= kPre || !prefetched)) wv[u] = ld_stream(wp + (j0 + u) * 32);
#pragma unroll
        for (int u = 0; u < U; u += 2)
          if (kc + u < kc1) sw[u / 2] = __ldg(sp + ((kc + u) >> cshift) * 8);
#pragma unroll
        for (int u = 0; u < U; u += 2) {
          if (kc + u >= kc1) break;
          float part[NT][4];
#pragma unroll
          for (int t = 0; t < NT; ++t)
#pragma unroll
            for (int i = 0; i < 4; ++i) part[t][i] = 0.0f;
#pragma unroll
          for (int v = 0; v < 2; ++v) {
            if (v == 1 && kc + u + 1 >= kc1) break;
            const uint4 w = wv[u + v];
#pragma unroll
            for (int b = 0; b < 2; ++b) {
              uint32_t a0[4], a1[4];
              fp4_fragment_raw(word_of(w, 2 * b), a0);
              fp4_fragment_raw(word_of(w, 2 * b + 1), a1);
              const int off = (2 * (j0 + u + v) + b) * 32;
#pragma unroll
              for (int t = 0; t < NT; ++t) {
                const uint4 xh = *reinterpret_cast<const uint4*>(xrow[t] + off);
                mma<KIND>(part[t], a0, xh.x, xh.y);
                mma<KIND>(part[t], a1, xh.z, xh.w);
                if constexpr (!PAIR) {
                  const uint4 xl = *reinterpret_cast<const uint4*>(xrow[t] + S + off);
                  mma<KIND>(part[t], a0, xl.x, xl.y);
                  mma<KIND>(part[t], a1, xl.z, xl.w);
                }
              }
            }
          }
          add_scaled(acc, part, sw[u / 2]);
        }
      }
      if constexpr (PAIR) {  // token c = its hi column 2c + its lo column 2c + 1 (rows g and g + 8)
        acc[0][0] += acc[0][1];
        acc[0][2] += acc[0][3];
      }
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[t][i] *= kRawOutScale;
    } else if constexpr (kFp4) {
      const uint4* wp = static_cast<const uint4*>(p.w.data) + expert * p.w.expert_stride +
                        int64_t(nt) * p.w.k_chunks * 32 + lane;
      const uint32_t* sp = p.w.scales + expert * p.w.expert_scale_stride + int64_t(nt) * p.w.groups * 8 + g;
      // The group of 32-column block kb: a shift when the group size is a power of two (no integer division in
      // the loop); with groups of >= 64 columns both halves of a chunk share one scale, applied once per chunk.
      const int gshift = p.gshift;
      const bool per_chunk = p.w.group_size >= 64;
      // One 64-column chunk: four words = the A fragments of 4 mma steps, scales applied per 32/64 columns.
      auto chunk = [&](const uint4& w, int kc) {
        float part[NT][4];
#pragma unroll
        for (int b = 0; b < 2; ++b) {
          const int kb = 2 * kc + b;
          if (b == 0 || !per_chunk) {
#pragma unroll
            for (int t = 0; t < NT; ++t)
#pragma unroll
              for (int i = 0; i < 4; ++i) part[t][i] = 0.0f;
          }
          uint32_t a[2][4];
          fp4_frag<LAYOUT>(word_of(w, 2 * b), a[0]);
          fp4_frag<LAYOUT>(word_of(w, 2 * b + 1), a[1]);
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            const uint4 xv = xfrag(t, kb, false);
            mma<KIND>(part[t], a[0], xv.x, xv.y);
            mma<KIND>(part[t], a[1], xv.z, xv.w);
            if (split_x) {
              const uint4 xl = xfrag(t, kb, true);
              mma<KIND>(part[t], a[0], xl.x, xl.y);
              mma<KIND>(part[t], a[1], xl.z, xl.w);
            }
          }
          if (b == 1 || !per_chunk) {
            const int grp = gshift >= 0 ? (kb >> gshift) : (kb * 32) / p.w.group_size;
            add_scaled(acc, part, __ldg(sp + grp * 8));
          }
        }
      };
      if constexpr (PIPE) {
        // Batches of U chunks, the next batch's loads issued before the current batch is computed: 2U loads in
        // flight per warp at the top of each batch instead of U.
        uint4 cur[U], nxt[U];
#pragma unroll
        for (int u = 0; u < U; ++u)
          if (kc0 + u < kc1) cur[u] = (u < kPre && prefetched) ? wpre[u < kPre ? u : 0] : ld_stream(wp + int64_t(kc0 + u) * 32);
        for (int kc = kc0; kc < kc1; kc += U) {
#pragma unroll
          for (int u = 0; u < U; ++u)
            if (kc + U + u < kc1) nxt[u] = ld_stream(wp + int64_t(kc + U + u) * 32);
#pragma unroll
          for (int u = 0; u < U; ++u)
            if (kc + u < kc1) chunk(cur[u], kc + u);
#pragma unroll
          for (int u = 0; u < U; ++u) cur[u] = nxt[u];
        }
      } else {
        for (int kc = kc0; kc < kc1; kc += U) {
          uint4 wv[U];
#pragma unroll
          for (int u = 0; u < U; ++u) {
            if (u < kPre && prefetched && kc == kc0)
              wv[u] = wpre[u < kPre ? u : 0];
            else if (kc + u < kc1)
              wv[u] = ld_stream(wp + int64_t(kc + u) * 32);
          }
#pragma unroll
          for (int u = 0; u < U; ++u) {
            if (kc + u >= kc1) break;
            chunk(wv[u], kc + u);
          }
        }
      }
    } else {
      // Dense 16-bit rows g and g + 8 of this tile (clamped to the last row: padding rows are computed, not stored).
      const uint16_t* base = static_cast<const uint16_t*>(p.w.data) + expert * p.w.expert_stride;
      const int r_lo = min(nt * 16 + g, p.w.n - 1), r_hi = min(nt * 16 + g + 8, p.w.n - 1);
      const uint16_t* row_lo = base + int64_t(r_lo) * p.w.k;
      const uint16_t* row_hi = base + int64_t(r_hi) * p.w.k;
      const bool vec_ok = (p.w.k % 8) == 0 && (reinterpret_cast<uintptr_t>(base) % 16) == 0;
      // Ring of U chunks in flight, as above (4 x 16 bytes per lane and chunk: rows g and g + 8, two halves).
      uint4 wq[U][4];
      auto fetch = [&](int ch, uint4 (&d)[4]) { dense_fetch(row_lo, row_hi, ch, c, p.w.k, vec_ok, d); };
#pragma unroll
      for (int i = 0; i < U; ++i)
        if (kc0 + i < kc1) fetch(kc0 + i, wq[i]);
      for (int kc = kc0; kc < kc1; kc += U) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int ch = kc + u;
          if (ch >= kc1) break;
          uint4 w[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) w[i] = wq[u][i];
          if (ch + U < kc1) fetch(ch + U, wq[u]);
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            const int kb = 2 * ch + b;
#pragma unroll
            for (int t = 0; t < NT; ++t)
              dense_step<KIND>(acc[t], w[2 * b], w[2 * b + 1], xfrag(t, kb, false),
                               split_x ? xfrag(t, kb, true) : make_uint4(0u, 0u, 0u, 0u), split_x);
          }
        }
      }
    }
  }

  // Epilogue. This lane holds D[row g (+8)][token 8t + 2c (+1)]; paired, token c in D[g (+8)][2c] only.
  const int n_lo = nt * 16 + g, n_hi = n_lo + 8;
  auto token_of = [&](int t, int i) { return PAIR ? ((i & 1) ? TM : c) : 8 * t + 2 * c + (i & 1); };
  // K slices (GemmArgs::kslices; the raw loop, one K split): slice 0 of each tile adds the other slices' sums in
  // slice order and stores; the others store nothing. The sums meet in shared memory, [warp][NT][lane] float4s: one
  // token tile in a static array, two in the staged rows' memory once every warp is done with the rows (the launch
  // sizes it for both; 8 KB of static memory would sit beside every two-tile launch's staging, K-split or not). Two
  // copies of the sum on purpose: written once through a pointer, the one-tile decode build (the batch-1 GEMV) took
  // a spill that it does not have with the static array.
  bool store = true;
  if constexpr (RAW && NT == 1) {
    if (p.kslices > 1) {
      __shared__ float4 red[kWarps][kWarp];
      red[warp][lane] = make_float4(acc[0][0], acc[0][1], acc[0][2], acc[0][3]);
      __syncthreads();
      store = warp % p.kslices == 0;
      if (store)
        for (int s = 1; s < p.kslices; ++s) {
          const float4 o = red[warp + s][lane];
          acc[0][0] += o.x;
          acc[0][1] += o.y;
          acc[0][2] += o.z;
          acc[0][3] += o.w;
        }
    }
  } else if constexpr (RAW) {
    if (p.kslices > 1) {
      float4* red = reinterpret_cast<float4*>(staged);
      __syncthreads();
#pragma unroll
      for (int t = 0; t < NT; ++t)
        red[(warp * NT + t) * kWarp + lane] = make_float4(acc[t][0], acc[t][1], acc[t][2], acc[t][3]);
      __syncthreads();
      store = warp % p.kslices == 0;
      if (store)
        for (int s = 1; s < p.kslices; ++s)
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            const float4 o = red[((warp + s) * NT + t) * kWarp + lane];
            acc[t][0] += o.x;
            acc[t][1] += o.y;
            acc[t][2] += o.z;
            acc[t][3] += o.w;
          }
    }
  }
  // The router's launch (GemmArgs::route; one row block): once the block has stored all logits of its token rows,
  // a warp per row routes it. The barrier makes the block's global stores visible to its own threads.
  auto route_rows = [&] {  // one token tile of 8 rows only (the backend asks no more: a spill in the two-tile loop)
    if constexpr (NT == 1) {
      __syncthreads();
      route_tile_rows(p.route, yb, p.y_stride, out0, rows);
    }
  };
  if (p.splits == 1) {
    if (nt < p.w.n_tiles && store) {
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int tok = token_of(t, i), n = (i < 2) ? n_lo : n_hi;
          if (tok < rows && n < p.w.n) {
            float* o = yb + int64_t(out0 + tok) * p.y_stride + n;
            *o = p.accumulate ? *o + acc[t][i] : acc[t][i];
          }
        }
    }
    if (p.route.ids) route_rows();
    return;
  }
  const int rbs = tmaj ? gridDim.y : gridDim.x, npad = rbs * kBlockRows;
  float* part = p.partial + (int64_t(tile) * p.splits + split) * TM * npad;
  if (nt < p.w.n_tiles) {
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int tok = token_of(t, i), n = (i < 2) ? n_lo : n_hi;
        if (tok < rows) part[int64_t(tok) * npad + n] = acc[t][i];
      }
  }
  // "Last block finishes" (common.cuh): the last block of the row block to finish adds all splits in order.
  if (!splitk_last(p.counters + int64_t(tile) * rbs + rb, p.splits)) return;
  splitk_store(p.partial + int64_t(tile) * p.splits * TM * npad, p.splits, TM, npad, rows, rb * kBlockRows, p.w.n, yb,
               p.y_stride, out0, p.accumulate);
  if (p.route.ids) route_rows();
}

// U chunks in flight per warp, MINB blocks per SM (the register cap), PIPE: next batch loaded before this one runs,
// RAW: the decode loop (raw_ok).
template <WKind KIND, int NT, int LAYOUT, int U, int MINB, bool PIPE, bool RAW = false, bool PAIR = false>
void launch_cfg(const GemmArgs& a, cudaStream_t s) {
  const int tpb = kWarps / a.kslices;  // weight tiles per block
  const dim3 grid((a.w.n_tiles + tpb - 1) / tpb, a.grid_tiles, a.splits);
  if constexpr (NT <= 2) {
    if (a.stage) {
      // The staged rows, or two token tiles' K-slice sums where larger (they reuse the rows' memory); beside it the
      // static shared memory: one token tile's K-slice sums (4 KB) and <= 1 KB of the staging's and the split's
      // words. Above 48 KB in all: opt in.
      const size_t smem = std::max(size_t(staged_bytes(a.stage_rows, a.stage_stride, a.prep.xb_lo != nullptr)),
                                   NT == 2 && a.kslices > 1 ? size_t(kWarps * NT * kWarp * 16) : size_t(0));
      constexpr size_t kStatic = (RAW && NT == 1 ? kWarps * kWarp * 16 : 0) + 1024;
      if (smem + kStatic > (48 << 10))
        smem_opt_in<gemm_mma_kernel<KIND, NT, U, true, LAYOUT, MINB, PIPE, RAW, PAIR>>(int(kStageMaxBytes),
                                                                                      "linear (staged activations)");
      MMFP4_LAUNCH(grid, kWarps * kWarp, smem, s, gemm_mma_kernel<KIND, NT, U, true, LAYOUT, MINB, PIPE, RAW, PAIR>)(a);
      return;
    }
  }
  if constexpr (!RAW) {
    if (a.tile_major && (KIND == WKind::Fp4 || grid.x > 65535u))
      fail("gemm_mma: token-tile-major grids are for 16-bit weights of at most 65535 row blocks");
    const dim3 g = a.tile_major ? dim3(grid.y, grid.x, grid.z) : grid;
    MMFP4_LAUNCH(g, kWarps * kWarp, 0, s, gemm_mma_kernel<KIND, NT, U, false, LAYOUT, MINB, PIPE, false, false>)(a);
  }
}

// MMFP4 loop variants for one or two token tiles (H100 A/B in bench/results/cuda-gemv-variants-de47cd4.txt):
//   plain linears with one token tile (decode, M <= 8): U = 8 chunks per batch, 3 blocks per SM (28672x8192 M=1
//   78.6 -> 69.6 us, decode batch 1 +6%); MoE tiles and per-head launches with one token tile keep U = 4 in batches
//   at 4 blocks per SM (U = 8 cost batch 64 8%); two token tiles (M 9..16): U = 2, the next batch's loads issued
//   before the current batch runs (M=16 120.6 -> 107.6 us, batch 64 +2%).
//   Raw loop (4, where raw_ok; the default since 2026-11-26, bench/results/cuda-ab-decode-raw-2e0e0ba.txt): the same batches with a
//   leaner body (fp4_fragment_raw, one scale per chunk pair, no per-chunk format branches; ~100 instead of ~143
//   instructions per 1,024 weights): U = 8 for plain one-tile launches, else U = 4 (U = 8 for MoE tiles measured
//   slower: decode batch 16 -2.5%, batch 64 -4%). 28672x8192 M=1 69.0 -> 51.4 us, decode batch 1 165 -> 185.
// MMFP4_CUDA_GEMV=0 forces the earlier loop (U = 4 in batches) everywhere, 1 = U 4 pipelined, 2 = U 8 in batches,
// 3 = U 2 pipelined, 4 = the raw loop where it applies (measurement only); MMFP4_CUDA_FAST_RAWGEMV=0 turns the raw
// loop off (FastPaths::raw_gemv; the variants before it).
int gemv_variant() {
  static const int v = int(env_int("MMFP4_CUDA_GEMV", 0, 4).value_or(-1));
  return v;
}

int fp4_variant(const GemmArgs& a) {
  if (a.kslices > 1) return 4;  // only the raw loop adds K slices (the backend checks raw_ok)
  const int v = gemv_variant();
  if (v >= 0) return v == 4 && !gemm_mma_raw_ok(a) ? -1 : v;
  if (gemm_mma_raw_ok(a)) return 4;
  return a.nt == 2 ? 3 : (a.tiles.tiles || a.heads) ? 0 : 2;
}

template <WKind KIND, int NT, int LAYOUT>
void launch_nt(const GemmArgs& a, cudaStream_t s) {
  constexpr int kMinB = KIND == WKind::Fp4 ? (NT == 1 ? 4 : NT == 2 ? 3 : 1) : (NT <= 2 ? 2 : 1);
  if constexpr (KIND == WKind::Fp4 && NT <= 2) {
    switch (fp4_variant(a)) {
      case 1: launch_cfg<KIND, NT, LAYOUT, 4, NT == 1 ? 3 : 2, true>(a, s); return;
      case 2: launch_cfg<KIND, NT, LAYOUT, 8, NT == 1 ? 3 : 2, false>(a, s); return;
      case 3: launch_cfg<KIND, NT, LAYOUT, 2, kMinB, true>(a, s); return;
      case 4:
        if constexpr (LAYOUT == 2) {
          if constexpr (NT == 1) {  // plain linears, and MLA's per-head W_UV (heads) when wide
            if (!a.tiles.tiles && (!a.heads || a.wide)) {
              if (a.wide)
                a.pair ? launch_cfg<KIND, NT, LAYOUT, 8, 2, false, true, true>(a, s)
                       : launch_cfg<KIND, NT, LAYOUT, 8, 2, false, true>(a, s);
              else
                a.pair ? launch_cfg<KIND, NT, LAYOUT, 8, 3, false, true, true>(a, s)
                       : launch_cfg<KIND, NT, LAYOUT, 8, 3, false, true>(a, s);
              return;
            }
            if (a.pair) {
              launch_cfg<KIND, NT, LAYOUT, 4, kMinB, false, true, true>(a, s);
              return;
            }
          }
          if constexpr (NT == 2) {  // (GemmArgs::wide: U = 8 at 2 blocks per SM, 109 registers)
            if (!a.tiles.tiles && !a.heads && a.wide) {
              launch_cfg<KIND, NT, LAYOUT, 8, 2, false, true>(a, s);
              return;
            }
          }
          launch_cfg<KIND, NT, LAYOUT, 4, kMinB, false, true>(a, s);
          return;
        }
        break;
      default: break;
    }
  }
  launch_cfg<KIND, NT, LAYOUT, KIND == WKind::Fp4 ? 4 : 2, kMinB, false>(a, s);
}

template <WKind KIND, int LAYOUT>
void launch_kind(const GemmArgs& a, cudaStream_t s) {
  switch (a.nt) {
    case 1: launch_nt<KIND, 1, LAYOUT>(a, s); break;
    case 2: launch_nt<KIND, 2, LAYOUT>(a, s); break;
    case 4: launch_nt<KIND, 4, LAYOUT>(a, s); break;
    default: launch_nt<KIND, 8, LAYOUT>(a, s); break;
  }
}

}  // namespace

// The raw loop's conditions (kernels.h): MMFP4 in layout 2, one or two token tiles with activations staged as hi + lo
// bf16, groups of a power of two >= 128 columns, splits of K that start on a group.
bool gemm_mma_raw_ok(const GemmArgs& a) {
  return a.raw && a.w.kind == WKind::Fp4 && a.w.layout == 2 && a.stage && a.nt <= 2 && a.prep.xb_lo && !a.prep.f16 &&
         a.gshift >= 2 && (a.splits == 1 || (a.cps & ((1 << (a.gshift - 1)) - 1)) == 0);
}

int gemm_mma_blocks_per_sm(const GemmArgs& a) {
  if (a.w.kind != WKind::Fp4) return a.nt <= 2 ? 2 : 1;
  if (a.nt > 2) return 1;
  switch (fp4_variant(a)) {
    case 1: case 2: return a.nt == 1 ? 3 : 2;
    case 4: return a.wide ? 2 : !a.tiles.tiles && !a.heads ? 3 : a.nt == 1 ? 4 : 3;
    default: return a.nt == 1 ? 4 : 3;
  }
}

void launch_gemm_mma(const GemmArgs& a, cudaStream_t s) {
  if (a.stage && (a.nt > 2 || a.stage_rows > 8 * a.nt || a.stage_stride % 64 != 32))
    fail("gemm_mma: staged activations need nt <= 2 and a padded row stride");
  switch (a.w.kind) {
    case WKind::Fp4: a.w.layout == 2 ? launch_kind<WKind::Fp4, 2>(a, s) : launch_kind<WKind::Fp4, 1>(a, s); break;
    case WKind::Bf16: launch_kind<WKind::Bf16, 0>(a, s); break;
    case WKind::F16: launch_kind<WKind::F16, 0>(a, s); break;
    default: fail("gemm_mma: float32 weights take the generic kernel");
  }
  MMFP4_CUDA_LAUNCHED("linear (tensor cores) W [", a.w.n, ", ", a.w.k, "] kind ", int(a.w.kind), ", ", a.m,
                      " rows, nt ", a.nt, ", ", a.splits, " splits of ", a.cps, " chunks, ", a.grid_tiles,
                      " token tiles", a.stage ? ", staged activations" : "");
}

}  // namespace mmfp4::cuda
