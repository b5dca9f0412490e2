// y (+)= x W^T for 1..16 token rows of a plain MMFP4 linear whose 16-row weight tiles fill the GPU (FastPaths::
// whole_k and whole_k_pair; the 28672x8192 and 20480x2048 class at decode batches): every tile in one wave, each over
// all of K, fed by the copy engine.
//   * Block b owns tiles [b T, b T + T) (T = whole_k_tiles = ceil(tiles / SMs), 8..15), KW consumer warps per tile
//     (kw_of: 2 where the block's codes over all of K fit its shared memory, each taking every other stage; else 1)
//     and one producer warp: ceil(tiles / T) <= SMs blocks, one per SM, every weight byte read once and no K split
//     across blocks (no partial sums in global memory, counters or fences; the stream-K variant measured 15 us slower
//     at 28672x8192 M=16, its finishing fences waiting for the loads in flight). A tile's KW warps add their sums in
//     shared memory, in warp order.
//   * Stage q = columns [256 q, 256 q + 256): the producer's lanes copy each tile's 4 chunks (2 KB, contiguous in
//     the tile layout) with cp.async.bulk (bulk_copy.cuh) into one of S shared-memory slots, completing on the slot's
//     `full` barrier; consumers arrive on `empty` when done and the producer refills (slots_of: as many as fit, at
//     most 6 where the codes fit). The block's scales over all of K come by one more copy. They and the first stages'
//     codes (4 with staged rows, 3 with prepared ones) are requested before waiting for the previous kernel (weights
//     never change during a step), so a launch's weights stream while the previous one drains: on the H100
//     back-to-back reads of 21.6 MB take 7.0 us requested before that wait and 8.4-8.7 us after it
//     (scripts/device/probe_read_overlap.cu).
//   * Activations, 5..16 rows: prepared by launch_prepare_activations (PrepArgs::raw: hi and lo of each token tile,
//     8 k32 items of 512 bytes per stage) and copied with each stage by lane 0, the first 3 stages' codes before the
//     wait (kPreparedEarly). 1..4 rows where the codes fit (STAGED, GemmArgs::stage): the block stages the rows over
//     all of K once, after the wait, with the staged decode loop's conversion (stage_activations, a pending rmsnorm
//     included; all the block's threads loading kStageBatch pieces each before converting, GemmArgs::stage_batch),
//     and the tile's 8 mma columns hold each token's hi and lo halves (GemmArgs::pair). (5..16 rows staged the same
//     way measured slower from 8 rows: docs/cuda.md, eighteenth session.)
//   * A consumer decodes its tile's words as the raw decode loop does (fp4_fragment_raw: bits placed, no multiply;
//     activations times kRawActScale, sums times kRawOutScale), the group scale once per chunk pair on the float32
//     sums (add_scaled). Weight fragments and activation fragments are 16-byte shared-memory reads of consecutive
//     lanes (no bank conflicts).
// H100 (docs/cuda.md, fourteenth and fifteenth sessions): 28672x8192 at M=16 86.6 -> 57.7-57.8 us, M=5..8 58.9-61.3
// -> 46.9-47.3; 20480x2048 at M=1 11.8-11.9 -> 9.9-10.1, M=4 13.1 -> 11.5-11.6, M=5..8 13.8-13.9 -> 12.6-12.7, M=16
// 15.9-16.0 -> 15.2 (through the backend, the prepare kernel included). A 20480x2048 launch is bound by its chain
// after the wait, not by its reads: about 1.5 us for the wait to return, 2.5-3.4 us to stage one row while copies
// are in flight, then the decode (scripts/device/probe_whole_k_trace.cu).
#include <algorithm>

#include "backend/cuda/bulk_copy.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/stage_activations.cuh"
#include "core/env.h"

// Timeline hooks for scripts/device/probe_whole_k_trace.cu (which defines them and includes this file); nothing here.
// MMFP4_WHOLEK_PRODUCER(point): the producer warp after staging (1) and after its last copy (2).
#ifndef MMFP4_WHOLEK_TRACE
#define MMFP4_WHOLEK_TRACE(point)
#endif
#ifndef MMFP4_WHOLEK_PRODUCER
#define MMFP4_WHOLEK_PRODUCER(point)
#endif

namespace mmfp4::cuda {

namespace {

constexpr int kStageChunks = 4;                 // 64-column chunks per stage
constexpr int kTileBytes = kStageChunks * 512;  // one tile's codes of a stage
static_assert(2 * kStageChunks == 8, "prepared_step (common.cuh) reads 8 k32 items per stage");
constexpr int kMinTiles = 8;                    // fewer consumer warps per SM: the staged loop (gemv_fp4.cu)
constexpr int kMaxTiles = 15;                   // x KW + the producer: <= 31 warps (64 registers each at KW = 2)
constexpr int kTightTiles = 10;                 // KW = 2 launches of <= 10 tiles: <= 21 warps (launch_nt)
constexpr int kMaxSlots = 16;
constexpr int kFitSlots = 6;                    // where the codes fit (slots_of)
// [[maybe_unused]] here and on kStageBatch: read only by the kernel body, which the sm_80 pass compiles empty.
[[maybe_unused]] constexpr int kPreparedEarly = 3;  // stages requested before the wait with prepared activations
constexpr int kStagedEarly = 4;                 // and with staged ones (staged_early)
// Staged rows (GemmArgs::stage_batch): pieces of 8 columns a thread loads before it converts any. On the H100 the
// 20480x2048 launch at M=2 11.1-11.3 -> 10.5-10.6 us, M=4 12.1 -> 11.5-11.6 (M=1 the same: 256 pieces, one each).
[[maybe_unused]] constexpr int kStageBatch = 4;
// Dynamic shared memory of a block at most: sm_90's 227 KB per block less 1 KB (stage_activations' static arrays).
constexpr int kSmemBudget = (227 << 10) - (1 << 10);

// A slot: the tiles' codes [T][kTileBytes], then (prepared activations) [hi, lo][token tile][8 k32 items][512 bytes].
__host__ __device__ constexpr int act_bytes(int nt) { return 2 * nt * 2 * kStageChunks * 512; }
__host__ __device__ inline int slot_bytes(const GemmArgs& a) {
  return a.whole_k_tiles * kTileBytes + (a.stage ? 0 : act_bytes(a.nt));
}
// Shared memory before the slots: the staged rows (STAGED: hi and lo, staged_bytes), then the block's tiles' group
// scales over all of K ([T][groups][8] words, one copy), each 128-byte aligned.
__host__ __device__ inline int staged_region(const GemmArgs& a) {
  return a.stage ? (2 * (a.stage_lo + a.stage_rows * a.stage_stride) + 127) / 128 * 128 : 0;
}
__host__ __device__ inline int scales_region(const GemmArgs& a) {
  return (a.whole_k_tiles * a.w.groups * 32 + 127) / 128 * 128;
}
// KW > 1 warps per tile: the partial sums of warps 1..KW-1 of each tile ([KW - 1][T][nt][32 lanes][4]).
__host__ __device__ inline int red_region(const GemmArgs& a, int kw) {
  return (kw - 1) * a.whole_k_tiles * a.nt * kWarp * 16;
}
int smem_bytes(const GemmArgs& a, int kw) {
  return staged_region(a) + scales_region(a) + red_region(a, kw) + a.whole_k_slots * (slot_bytes(a) + 16) + 16;
}

// MMFP4_CUDA_WHOLEK_SLOTS=n caps the slots (measurement only; 0 or unset: slots_of's choice).
int slots_cap() {
  static const int v = int(env_int("MMFP4_CUDA_WHOLEK_SLOTS", 0, kMaxSlots).value_or(0));
  return v == 0 ? kMaxSlots : v;
}

// Stages a staged launch (1..4 rows) requests before the wait: kStagedEarly, the other slots' after its rows are
// staged, so that the rows' reads do not queue behind the whole prefetch (20480x2048 on the H100 with 6 slots, 4
// early against all 6: M=1 9.9-10.1 against 10.1 us, M=2 10.7 against 10.9-11.1, M=4 11.5-11.6 against 12.3; 1 or 2
// early: M=1 10.5-10.8). MMFP4_CUDA_WHOLEK_EARLY=n requests n (measurement only).
int staged_early() {
  static const int v = int(env_int("MMFP4_CUDA_WHOLEK_EARLY", 1, kMaxSlots).value_or(kStagedEarly));
  return v;
}

// A block's codes over all of K fit its shared memory (GLM's 20480x2048: 160 KB; 28672x8192: 896 KB). Such a
// weight streams in ~7 us on the H100, and a launch's time is its chain after the wait for the previous one (the
// wait's own ~1.5 us, staging, the decode of every stage: a globaltimer trace, scripts/device/probe_whole_k_trace.cu)
// rather than its reads; larger ones stream for longer than that chain.
bool codes_fit(const GemmArgs& a) { return int64_t(a.whole_k_tiles) * a.w.k_chunks * 512 <= kSmemBudget; }

// Consumer warps per tile: 2 where the codes fit (each warp takes every other stage: half the chain's decode; on the
// H100 20480x2048 at M=1 11.9 -> 10.0 us with 6 slots), else 1 (28672x8192 at M=5..8: 49.4 us with two, 47.0 with one).
// MMFP4_CUDA_WHOLEK_KW=1 or 2 forces it (measurement only).
int kw_of(const GemmArgs& a) {
  static const int forced = int(env_int("MMFP4_CUDA_WHOLEK_KW", 1, 2).value_or(0));
  return forced ? forced : codes_fit(a) ? 2 : 1;
}

// Slots of the launch: as many as fit the budget, at most one per stage. Where they go round (fewer than the stages),
// a multiple of the warps per tile: the warp that waits for stage q in a slot then consumed stage q - S of that slot
// itself, so the slot's barrier is never two phases behind the parity it waits for (which would pass at once: with 5
// slots and 2 warps per tile the 28672x8192 launch hung on the H100).
// Where the codes fit, at most kFitSlots: 20480x2048 at M=1 measured 10.0 us with 6 slots, 10.4 with 4 and 11.0 with
// all 8 (why all 8 lose is not established; with one warp per tile 5 slots, where two blocks of consecutive launches
// share an SM, beat 4, 6 and 8).
int slots_of(const GemmArgs& a) {
  const int nq = (a.w.k_chunks + kStageChunks - 1) / kStageChunks, kw = kw_of(a);
  const int fit = (kSmemBudget - staged_region(a) - scales_region(a) - red_region(a, kw) - 16) / (slot_bytes(a) + 16);
  const int s = std::min({fit, codes_fit(a) ? kFitSlots : kMaxSlots, slots_cap()});
  return s >= nq ? nq : s / kw * kw;
}

// NT n8 token tiles (1: up to 8 rows, 2: 9..16 rows); STAGED: 1..4 rows staged in the block, hi and lo paired; KW
// consumer warps per tile, warp j + T i taking tile j's stages i, i + KW, ... (kw_of); MAXT tiles per block at most
// (the register budget: launch_nt).
template <int NT, bool STAGED, int KW, int MAXT>
__global__ void __launch_bounds__(kWarp * (MAXT * KW + 1), 1) gemm_whole_k_kernel(GemmArgs p) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900) || defined(MMFP4_SIM)
  static_assert(!STAGED || NT == 1, "paired columns hold one token tile");
  MMFP4_DYN_SMEM(unsigned char, smem);
  const int T = p.whole_k_tiles, S = p.whole_k_slots, SB = slot_bytes(p);
  uint32_t* scales = reinterpret_cast<uint32_t*>(smem + staged_region(p));
  float4* red = reinterpret_cast<float4*>(smem + staged_region(p) + scales_region(p));
  unsigned char* ring = smem + staged_region(p) + scales_region(p) + red_region(p, KW);
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + S * SB);
  uint64_t* empty = full + S;
  uint64_t* scales_full = empty + S;
  uint64_t* red_full = scales_full + 1;
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp;
  const int t0 = int(blockIdx.x) * T, tiles = min(T, p.w.n_tiles - t0);
  const int nq = (p.w.k_chunks + kStageChunks - 1) / kStageChunks, pre = min(S, nq);
  auto chunks_of = [&](int q) { return min(kStageChunks, p.w.k_chunks - q * kStageChunks); };
  auto act_tx = [&](int q) { return STAGED ? 0u : uint32_t(2 * NT * 2 * chunks_of(q) * 512); };
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], tiles);
    }
    mbar_init(scales_full, 1);
    if (KW > 1) mbar_init(red_full, (KW - 1) * tiles * kWarp);
    mbar_init_fence();
  }
  __syncthreads();

  MMFP4_WHOLEK_TRACE(0);
  const bool producer = warp == T * KW;
  const unsigned char* codes = static_cast<const unsigned char*>(p.w.data);
  auto copy_codes = [&](int q, int slot) {  // the producer's lanes, a tile each
    for (int w = lane; w < tiles; w += kWarp)
      bulk_copy_g2s(ring + slot * SB + w * kTileBytes,
                    codes + (int64_t(t0 + w) * p.w.k_chunks + q * kStageChunks) * 512, uint32_t(chunks_of(q) * 512),
                    &full[slot]);
  };
  auto copy_acts = [&](int q, int slot) {  // lane 0 (prepared activations)
    unsigned char* xs = ring + slot * SB + T * kTileBytes;
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < NT; ++t)
        bulk_copy_g2s(xs + (h * NT + t) * (2 * kStageChunks * 512),
                      static_cast<const unsigned char*>(h ? p.xb_lo : p.xb) +
                          (int64_t(t) * p.kb32 + 2 * kStageChunks * q) * 512,
                      uint32_t(2 * chunks_of(q) * 512), &full[slot]);
  };
  // Stages requested before the wait: kStagedEarly where the activations are staged in the block (staged_early).
  // Where each stage's prepared activations come by the copy engine after the wait, kPreparedEarly: with all 8 early
  // 20480x2048 at M=5..8 measured 14.1 -> 18.2 us (bench/results/cuda-ab-session15-042da48.txt, part 2, the scales
  // then still read per stage), as if a stage's activations waited behind every code copy requested before them.
  const int early = STAGED ? min(pre, p.whole_k_early) : min(pre, kPreparedEarly);
  if (producer) {  // the tiles' scales and the early stages' codes, before the wait
    if (lane == 0) {
      const uint32_t sbytes = uint32_t(tiles * p.w.groups * 32);
      mbar_arrive_expect_tx(scales_full, sbytes);
      bulk_copy_g2s(scales, p.w.scales + int64_t(t0) * p.w.groups * 8, sbytes, scales_full);
      for (int q = 0; q < early; ++q) {
        const uint32_t tx = uint32_t(tiles * chunks_of(q) * 512);
        STAGED ? mbar_arrive_expect_tx(&full[q], tx) : mbar_expect_tx(&full[q], tx);
      }
    }
    __syncwarp();
    for (int q = 0; q < early; ++q) copy_codes(q, q);
  }
  pdl_enter();  // the activations (and a pending norm's input) are the previous kernel's output
  MMFP4_WHOLEK_TRACE(1);
  if constexpr (STAGED) {
    uint16_t* staged = reinterpret_cast<uint16_t*>(smem);
    p.stage_batch ? stage_activations<kStageBatch>(p, 0, p.m, 0, p.w.k_chunks * 64, staged, kRawActScale)
                  : stage_activations(p, 0, p.m, 0, p.w.k_chunks * 64, staged, kRawActScale);
  }
  MMFP4_WHOLEK_TRACE(2);
  if (producer) {
    MMFP4_WHOLEK_PRODUCER(1);
    if constexpr (!STAGED) {
      if (lane == 0)
        for (int q = 0; q < early; ++q) {
          mbar_arrive_expect_tx(&full[q], act_tx(q));
          copy_acts(q, q);
        }
    }
    for (int q = early; q < nq; ++q) {
      const int slot = q % S;
      if (lane == 0) {
        mbar_wait(&empty[slot], ((q / S) & 1) ^ 1);  // the consumers' release of stage q - S (none before q = S)
        mbar_arrive_expect_tx(&full[slot], uint32_t(tiles * chunks_of(q) * 512) + act_tx(q));
        if constexpr (!STAGED) copy_acts(q, slot);
      }
      __syncwarp();
      copy_codes(q, slot);
    }
    MMFP4_WHOLEK_PRODUCER(2);
    return;
  }

  const int j = warp % T, kw = warp / T;  // tile j of the block, stages kw, kw + KW, ...
  if (j >= tiles) return;
  const int g = lane >> 2, c = lane & 3, nt = t0 + j, cshift = p.gshift - 1;  // 2^cshift chunks per scale
  const uint32_t* sp = scales + j * p.w.groups * 8 + g;  // the tile's scale words of row pair g
  // STAGED: lane column g is token g / 2's hi (g even) or lo (g odd) half (rows past the staged ones read the last
  // staged row: their sums land in columns of tokens that are never stored).
  const uint16_t* xrow = reinterpret_cast<const uint16_t*>(smem) + 8 * c + ((g & 1) ? p.stage_lo : 0) +
                         min(g >> 1, max(p.stage_rows, 1) - 1) * p.stage_stride;
  float acc[NT][4] = {};
  mbar_wait(scales_full, 0);
  for (int q = kw; q < nq; q += KW) {
    const int slot = q % S, nch = chunks_of(q);
    mbar_wait(&full[slot], (q / S) & 1);
    MMFP4_WHOLEK_TRACE(3 + q);
    const unsigned char* base = ring + slot * SB;
    const uint4* xs = reinterpret_cast<const uint4*>(base + T * kTileBytes) + lane;
#pragma unroll
    for (int pp = 0; pp < kStageChunks / 2; ++pp) {
      if (2 * pp >= nch) break;
      float part[NT][4] = {};
#pragma unroll
      for (int v = 0; v < 2; ++v) {
        if (2 * pp + v >= nch) break;
        const uint4 w = *reinterpret_cast<const uint4*>(base + j * kTileBytes + (2 * pp + v) * 512 + lane * 16);
#pragma unroll
        for (int b = 0; b < 2; ++b) {
          uint32_t a0[4], a1[4];
          fp4_fragment_raw(word_of(w, 2 * b), a0);
          fp4_fragment_raw(word_of(w, 2 * b + 1), a1);
          const int kb = 2 * (2 * pp + v) + b;  // k32 item of the stage
          if constexpr (STAGED) {
            const uint4 x = *reinterpret_cast<const uint4*>(xrow + (2 * kStageChunks * q + kb) * 32);
            mma_bf16_16816(part[0], a0, x.x, x.y);
            mma_bf16_16816(part[0], a1, x.z, x.w);
          } else {
            prepared_step<NT>(part, a0, a1, xs, kb);
          }
        }
      }
      add_scaled(acc, part, sp[((q * kStageChunks + 2 * pp) >> cshift) * 8]);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[slot]);
  }
  MMFP4_WHOLEK_TRACE(14);
  if constexpr (KW > 1) {  // warp 0 of each tile adds the others' sums in warp order
    if (kw > 0) {
#pragma unroll
      for (int t = 0; t < NT; ++t)
        red[(((kw - 1) * T + j) * NT + t) * kWarp + lane] = make_float4(acc[t][0], acc[t][1], acc[t][2], acc[t][3]);
      mbar_arrive(red_full);
      return;
    }
    mbar_wait(red_full, 0);
    for (int i = 1; i < KW; ++i)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float4 o = red[(((i - 1) * T + j) * NT + t) * kWarp + lane];
        acc[t][0] += o.x;
        acc[t][1] += o.y;
        acc[t][2] += o.z;
        acc[t][3] += o.w;
      }
  }
  if constexpr (STAGED) {  // token c = its hi column 2c + its lo column 2c + 1 (rows g and g + 8)
    acc[0][0] += acc[0][1];
    acc[0][2] += acc[0][3];
  }
  // This lane holds D[row g (+8)][token 8t + 2c (+1)]; STAGED, token c in D[g (+8)][2c] only.
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (STAGED && (i & 1)) continue;
      const int tok = STAGED ? c : 8 * t + 2 * c + (i & 1), n = nt * 16 + g + (i < 2 ? 0 : 8);
      if (tok < p.m && n < p.w.n) {
        float* o = p.y + int64_t(tok) * p.y_stride + n;
        const float v = acc[t][i] * kRawOutScale;
        *o = p.accumulate ? *o + v : v;
      }
    }
#endif
}

template <int NT, bool STAGED, int KW, int MAXT>
void launch_max(const GemmArgs& a, cudaStream_t s) {
  smem_opt_in<gemm_whole_k_kernel<NT, STAGED, KW, MAXT>>(kSmemBudget, "linear (whole K)");
  const int blocks = (a.w.n_tiles + a.whole_k_tiles - 1) / a.whole_k_tiles;
  MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(kWarp * (a.whole_k_tiles * KW + 1))), size_t(smem_bytes(a, KW)),
               s, gemm_whole_k_kernel<NT, STAGED, KW, MAXT>)(a);
}

// The register budget follows the block's warps: at most 31 (15 tiles x 2 + the producer) allow 64 registers a
// thread, where the 1..4-row launch spilled (32 bytes of stack); 21 (10 x 2 + 1: GLM's dense MLP) allow 96, where it
// takes 80 and spills nothing. On the H100 20480x2048 at M=1 10.58-10.59 -> 10.13-10.31 us, M=2 10.68-10.70 ->
// 10.22-10.34, M=4 11.69-11.72 -> 11.31-11.36, M=8 and 16 unchanged (bench/results/cuda-ab-session20-304f51a.txt,
// part 2).
template <int NT, bool STAGED, int KW>
void launch_nt(const GemmArgs& a, cudaStream_t s) {
  if constexpr (KW == 2) {
    if (a.whole_k_tiles <= kTightTiles) return launch_max<NT, STAGED, KW, kTightTiles>(a, s);
  }
  launch_max<NT, STAGED, KW, kMaxTiles>(a, s);
}

}  // namespace

int gemm_whole_k_tiles(const GemmWeight& w, int sms) {
  if (sms <= 0) return 0;
  const int t = (w.n_tiles + sms - 1) / sms;
  return t >= kMinTiles && t <= kMaxTiles ? t : 0;
}

bool gemm_whole_k_ok(const GemmArgs& a) {
  const bool common = a.w.kind == WKind::Fp4 && a.w.layout == 2 && !a.tiles.tiles && !a.heads && a.grid_tiles == 1 &&
                      a.gshift >= 2 && a.whole_k_tiles >= 1 && a.whole_k_tiles <= kMaxTiles && a.splits == 1 &&
                      !a.route.ids && a.m >= 1;
  if (!common) return false;
  const bool acts = a.stage ? a.nt == 1 && a.m <= 4 && codes_fit(a) && a.stage_rows == a.m && a.prep.xb_lo &&
                                  !a.prep.f16 && a.stage_stride == a.w.k_chunks * 64 + 32 &&
                                  a.stage_lo == stage_lo_offset(a.stage_rows, a.stage_stride)
                            : (a.nt == 1 || a.nt == 2) && a.m <= 8 * a.nt && a.xb && a.xb_lo &&
                                  a.kb32 == 2 * a.w.k_chunks;
  return acts && slots_of(a) >= std::min(2, (a.w.k_chunks + kStageChunks - 1) / kStageChunks);
}

void launch_gemm_whole_k(const GemmArgs& a_in, cudaStream_t s) {
  if (!gemm_whole_k_ok(a_in))
    fail("linear (whole K): MMFP4 layout 2 in power-of-two groups of >= 128 columns, a plain linear of 1..4 staged "
         "rows or one token tile of 8 or 16 prepared rows, 1..", kMaxTiles, " tiles per block, two slots in ",
         kSmemBudget, " bytes of shared memory");
  GemmArgs a = a_in;
  a.whole_k_slots = slots_of(a);
  a.whole_k_early = staged_early();
  const bool two = kw_of(a) == 2;
  if (a.stage) two ? launch_nt<1, true, 2>(a, s) : launch_nt<1, true, 1>(a, s);
  else if (a.nt == 1) two ? launch_nt<1, false, 2>(a, s) : launch_nt<1, false, 1>(a, s);
  else two ? launch_nt<2, false, 2>(a, s) : launch_nt<2, false, 1>(a, s);
  MMFP4_CUDA_LAUNCHED("linear (whole K) W [", a.w.n, ", ", a.w.k, "], ", a.m, " rows", a.stage ? " staged" : "", ", ",
                      a.whole_k_tiles, " tiles per block, ", kw_of(a), " warps per tile, ", a.whole_k_slots, " slots");
}

}  // namespace mmfp4::cuda
