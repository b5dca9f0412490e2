// y = x W_e^T for the token tiles of a MoE plan (1..16 rows each) on persistent blocks fed by the copy engine
// (FastPaths::moe_stream; sm_90 and the simulator): the batched-decode MoE GEMVs (gate+up, down).
//   * Work: the plan's *count token tiles (TileTable) times the expert's 16-row weight tiles, flattened (token tile
//     major) and cut into one contiguous range per block (one block per SM): every block streams the same number of
//     weight tiles whatever the routing, and an expert's tiles are read once per token tile, as in the staged loop.
//     A block takes its range in items of C weight tiles (next_item: one or two token tiles' worth), consumer warp j
//     owning tile j of the item over all of K (no K split, no partial sums); the producer warp streams the items'
//     stages back to back through one ring of shared-memory slots, so the next item's copies run while this one is
//     decoded. (The staged loop's blocks, 4 per SM, each staged its rows and then streamed ~128 KB: the DRAM idled
//     between a block's end and the next block's first loads, and the last wave ran part full.)
//   * Stage q = columns [256 q, 256 q + 256): the item's tiles' codes (2 KB each, contiguous in the tile layout) and
//     each segment's prepared activations (PrepArgs::raw, hi then lo, 8 k32 items of 512 bytes each), all by
//     cp.async.bulk on the slot's `full` barrier; consumers arrive on `empty` when done. An item's group scales
//     ([tiles][groups][8] words, a copy per segment) go to one of two buffers with their own barriers.
//   * Consumers decode and multiply as the whole-K launch does (gemv_whole_k.cu: fp4_fragment_raw, activations times
//     kRawActScale, sums times kRawOutScale, one group scale per chunk pair on the float32 sums): the products and
//     order of one K split of the staged loop.
// H100, GLM-4.7-Flash decode (docs/cuda.md, twenty-third session): batch 8 / 16 / 32 / 64 / 128 +8.3 / +7.9 / +10.0 /
// +7.1 / +27% against the staged loop, batch 4 +3.7%, batch 2 the same.
#include <algorithm>

#include "backend/cuda/bulk_copy.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kStageChunks = 4;                 // 64-column chunks per stage
constexpr int kTileBytes = kStageChunks * 512;  // one weight tile's codes of a stage
static_assert(2 * kStageChunks == 8, "prepared_step (common.cuh) reads 8 k32 items per stage");
constexpr int kMaxSlots = 8;
// Consumer warps per block (C): 24 for token tiles of 8 rows (3 slots), 16 for 16 rows (3 slots; 24 would leave 2).
// On the H100 (GLM-4.7-Flash decode, batch 4..64) 16 and 24 for 8 rows were within 1%, 28 (2 slots) 2-5% slower;
// 2 or 4 independent accumulator chains per step instead of 1 changed nothing (docs/cuda.md, twenty-third session).
__host__ __device__ constexpr int consumers(int nt) { return nt == 1 ? 24 : 16; }
constexpr int kSmemBudget = 227 << 10;          // sm_90's dynamic shared memory per block

// An item's tiles belong to one or two token tiles ("segments"). A slot: [C][kTileBytes] codes, then
// [segment][hi, lo][token tile][8 k32 items][512 bytes] of activations.
constexpr int kSegments = 2;
__host__ __device__ constexpr int act_bytes(int nt) { return 2 * nt * 2 * kStageChunks * 512; }  // one segment's
__host__ __device__ constexpr int slot_bytes(int nt, int C) { return C * kTileBytes + kSegments * act_bytes(nt); }
// One item's scales, [C][groups][8] words; two such buffers lead the shared memory.
__host__ __device__ inline int scale_bytes(const GemmArgs& a, int C) { return (C * a.w.groups * 32 + 127) / 128 * 128; }
int slots_of(const GemmArgs& a, int C) {
  const int barriers = 8 * 4 + 16;  // the scale buffers' four barriers (and slack); each slot adds two (16 bytes)
  return std::min(kMaxSlots, (kSmemBudget - 2 * scale_bytes(a, C) - barriers) / (slot_bytes(a.nt, C) + 16));
}
int smem_bytes(const GemmArgs& a, int C, int slots) {
  return 2 * scale_bytes(a, C) + slots * (slot_bytes(a.nt, C) + 16) + 8 * 4;
}

// Item: the next (up to) C pairs of the block's range [pos, end) of the flattened (token tile, weight tile) pairs:
// weight tiles [tile0, tile0 + n0) of the plan's token tile `slot`, then tiles [0, ntile - n0) of token tile slot + 1.
// Full items wherever the range allows (a block's time is its stages', whatever their tiles: items cut at token
// tiles left blocks of the same range 4 or 5 items long); an item spans two token tiles at most (fewer tiles where a
// weight has fewer than C).
struct Item {
  int slot, tile0, n0, ntile;
};
template <int C>
__device__ __forceinline__ bool next_item(int64_t& pos, int64_t end, int n_tiles, Item& it) {
  if (pos >= end) return false;
  it.slot = int(pos / n_tiles);
  it.tile0 = int(pos % n_tiles);
  it.ntile = int(min(min(int64_t(C), int64_t(2 * n_tiles - it.tile0)), end - pos));
  it.n0 = min(it.ntile, n_tiles - it.tile0);
  pos += it.ntile;
  return true;
}

template <int NT, int C>
__global__ void __launch_bounds__(kWarp * (C + 1), 1) moe_stream_kernel(GemmArgs p) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900) || defined(MMFP4_SIM)
  MMFP4_DYN_SMEM(unsigned char, smem);
  const int S = p.whole_k_slots, SB = slot_bytes(NT, C), SCB = scale_bytes(p, C);
  unsigned char* sbuf = smem;  // [2][SCB]
  unsigned char* ring = smem + 2 * SCB;
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + S * SB);
  uint64_t* empty = full + S;
  uint64_t* sfull = empty + S;  // [2]
  uint64_t* sempty = sfull + 2;  // [2]
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], C);
    }
    for (int b = 0; b < 2; ++b) {
      mbar_init(&sfull[b], 1);
      mbar_init(&sempty[b], C);
    }
    mbar_init_fence();
  }
  __syncthreads();
  pdl_enter();  // the plan's tile table and the prepared activations are earlier kernels' outputs
  const int n_tiles = p.w.n_tiles, nq = (p.w.k_chunks + kStageChunks - 1) / kStageChunks;
  const int64_t work = int64_t(*p.tiles.count) * n_tiles;
  const int64_t begin = work * blockIdx.x / gridDim.x, end = work * (blockIdx.x + 1) / gridDim.x;
  const int32_t* table = p.tiles.tiles;  // {expert, row0, rows} per token tile
  auto chunks_of = [&](int q) { return min(kStageChunks, p.w.k_chunks - q * kStageChunks); };

  if (warp == C) {  // the producer
    const unsigned char* codes = static_cast<const unsigned char*>(p.w.data);
    int64_t pos = begin;
    Item it;
    for (int i = 0, g = 0; next_item<C>(pos, end, n_tiles, it); ++i) {
      const int segs = it.ntile > it.n0 ? 2 : 1;
      // Each segment's expert and first token tile of the prepared rows (registers, not an indexed array).
      const int e0 = table[3 * it.slot], e1 = segs > 1 ? table[3 * (it.slot + 1)] : e0;
      const int tt0 = table[3 * it.slot + 1] / 8, tt1 = segs > 1 ? table[3 * (it.slot + 1) + 1] / 8 : tt0;
      if (lane == 0) {  // the item's scales, once the consumers are done with buffer i & 1's item i - 2
        const int b = i & 1;
        mbar_wait(&sempty[b], ((i >> 1) & 1) ^ 1);
        const int gw = p.w.groups * 8;  // words per tile
        mbar_arrive_expect_tx(&sfull[b], uint32_t(it.ntile * gw * 4));
        for (int sg = 0; sg < segs; ++sg) {
          const int n = sg ? it.ntile - it.n0 : it.n0, t0 = sg ? 0 : it.tile0;
          const uint32_t* src = p.w.scales + int64_t(sg ? e1 : e0) * p.w.expert_scale_stride + int64_t(t0) * gw;
          bulk_copy_g2s(sbuf + b * SCB + (sg ? it.n0 : 0) * gw * 4, src, uint32_t(n * gw * 4), &sfull[b]);
        }
      }
      for (int q = 0; q < nq; ++q, ++g) {
        const int slot = g % S;
        const uint32_t cb = uint32_t(chunks_of(q) * 512);
        if (lane == 0) {
          mbar_wait(&empty[slot], ((g / S) & 1) ^ 1);  // stage g - S released (none before g = S)
          mbar_arrive_expect_tx(&full[slot], uint32_t(it.ntile) * cb + uint32_t(segs) * 4 * NT * cb);
          unsigned char* xs = ring + slot * SB + C * kTileBytes;
          for (int sg = 0; sg < segs; ++sg)
            for (int h = 0; h < 2; ++h)
              for (int t = 0; t < NT; ++t)
                bulk_copy_g2s(xs + sg * act_bytes(NT) + (h * NT + t) * (2 * kStageChunks * 512),
                              static_cast<const unsigned char*>(h ? p.xb_lo : p.xb) +
                                  (int64_t((sg ? tt1 : tt0) + t) * p.kb32 + 2 * kStageChunks * q) * 512,
                              2 * cb, &full[slot]);
        }
        __syncwarp();
        for (int w = lane; w < it.ntile; w += kWarp) {
          const int sg = w >= it.n0, tile = sg ? w - it.n0 : it.tile0 + w;
          bulk_copy_g2s(ring + slot * SB + w * kTileBytes,
                        codes + (int64_t(sg ? e1 : e0) * p.w.expert_stride * 16 +
                                 (int64_t(tile) * p.w.k_chunks + q * kStageChunks) * 512),
                        cb, &full[slot]);
        }
      }
    }
    return;
  }

  const int g8 = lane >> 2, c = lane & 3, cshift = p.gshift - 1;  // 2^cshift chunks per scale group
  int64_t pos = begin;
  Item it;
  for (int i = 0, g = 0; next_item<C>(pos, end, n_tiles, it); ++i) {
    const int b = i & 1;
    // This warp's pair: weight tile `tile` of token tile `slot` (segment sg of the item), if the item has it.
    const bool mine = warp < it.ntile;
    const int sg = warp >= it.n0, slot_t = it.slot + sg, tile = sg ? warp - it.n0 : it.tile0 + warp;
    float acc[NT][4] = {};
    mbar_wait(&sfull[b], (i >> 1) & 1);
    const uint32_t* sp = reinterpret_cast<const uint32_t*>(sbuf + b * SCB) + warp * p.w.groups * 8 + g8;
    for (int q = 0; q < nq; ++q, ++g) {
      const int slot = g % S, nch = chunks_of(q);
      mbar_wait(&full[slot], (g / S) & 1);
      // (This stage loop repeats the whole-K launch's consumer loop around the shared prepared_step. Written once, with
      // the activations' product as a lambda, it changed that launch's code (1-3 more registers in five instances),
      // whose dense-MLP timings are #8's measured bars: so the loop stays in both.)
      if (mine) {
        const unsigned char* base = ring + slot * SB;
        const uint4* xs = reinterpret_cast<const uint4*>(base + C * kTileBytes + sg * act_bytes(NT)) + lane;
#pragma unroll
        for (int pp = 0; pp < kStageChunks / 2; ++pp) {
          if (2 * pp >= nch) break;
          float part[NT][4] = {};
#pragma unroll
          for (int v = 0; v < 2; ++v) {
            if (2 * pp + v >= nch) break;
            const uint4 w = *reinterpret_cast<const uint4*>(base + warp * kTileBytes + (2 * pp + v) * 512 + lane * 16);
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              uint32_t a0[4], a1[4];
              fp4_fragment_raw(word_of(w, 2 * h), a0);
              fp4_fragment_raw(word_of(w, 2 * h + 1), a1);
              prepared_step<NT>(part, a0, a1, xs, 2 * (2 * pp + v) + h);  // k32 item of the stage
            }
          }
          add_scaled(acc, part, sp[((q * kStageChunks + 2 * pp) >> cshift) * 8]);
        }
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[slot]);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(&sempty[b]);
    if (!mine) continue;
    // This lane holds D[row g8 (+8)][token 8t + 2c (+1)] of the pair's weight tile.
    const int row0 = table[3 * slot_t + 1], rows = table[3 * slot_t + 2], n0 = tile * 16 + g8;
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int tok = 8 * t + 2 * c + (k & 1), n = n0 + (k < 2 ? 0 : 8);
        if (tok < rows && n < p.w.n) {
          float* o = p.y + int64_t(row0 + tok) * p.y_stride + n;
          const float v = acc[t][k] * kRawOutScale;
          *o = p.accumulate ? *o + v : v;
        }
      }
  }
#endif
}

template <int NT>
void launch_nt(const GemmArgs& a, int blocks, cudaStream_t s) {
  constexpr int C = consumers(NT);
  smem_opt_in<moe_stream_kernel<NT, C>>(kSmemBudget, "moe experts (stream)");
  MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(kWarp * (C + 1))), size_t(smem_bytes(a, C, a.whole_k_slots)), s,
               moe_stream_kernel<NT, C>)(a);
}

}  // namespace

bool moe_stream_ok(const GemmArgs& a) {
  return a.w.kind == WKind::Fp4 && a.w.layout == 2 && a.tiles.tiles && a.tiles.count && !a.tiles.direct && !a.heads &&
         (a.nt == 1 || a.nt == 2) && a.xb && a.xb_lo && a.kb32 == 2 * a.w.k_chunks && a.gshift >= 2 &&
         a.splits == 1 && !a.route.ids && !a.stage && slots_of(a, consumers(a.nt)) >= 2;
}

void launch_moe_stream(const GemmArgs& a_in, int blocks, cudaStream_t s) {
  if (!moe_stream_ok(a_in) || blocks < 1)
    fail("moe experts (stream): MMFP4 layout 2 in power-of-two groups of >= 128 columns, a plan's token tiles of 8 "
         "or 16 prepared rows, two slots in ", kSmemBudget, " bytes of shared memory, >= 1 block (got ", blocks, ")");
  GemmArgs a = a_in;
  a.whole_k_slots = slots_of(a, consumers(a.nt));
  a.nt == 1 ? launch_nt<1>(a, blocks, s) : launch_nt<2>(a, blocks, s);
  MMFP4_CUDA_LAUNCHED("moe experts (stream) W [", a.w.n, ", ", a.w.k, "], token tiles of ", 8 * a.nt, " rows, ", blocks,
                      " blocks of ", consumers(a.nt), " consumer warps, ", a.whole_k_slots, " slots");
}

}  // namespace mmfp4::cuda
