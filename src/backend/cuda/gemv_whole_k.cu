// y (+)= x W^T for 5..16 token rows of a plain MMFP4 linear whose 16-row weight tiles fill the GPU (FastPaths::
// whole_k; the 28672x8192 and 20480x2048 class at decode batches of 5..16): every tile in one wave, each over all of
// K, fed by the copy engine.
//   * Block b owns tiles [b T, b T + T) (T = whole_k_tiles = ceil(tiles / SMs), 8..15), one per consumer warp, and one
//     more warp produces: ceil(tiles / T) <= SMs blocks, one per SM, every weight byte read once and no K split (no
//     partial sums, counters or fences; the stream-K variant measured 15 us slower at 28672x8192 M=16, its finishing
//     fences waiting for the loads in flight).
//   * Stage q = columns [256 q, 256 q + 256): the producer's lanes copy each tile's 4 chunks (2 KB, contiguous in
//     the tile layout) and lane 0 the stage's prepared activations (launch_prepare_activations with PrepArgs::raw:
//     hi and lo of each token tile, 8 k32 items of 512 bytes) into one of kStages shared-memory slots with
//     cp.async.bulk (bulk_copy.cuh), completing on the slot's `full` barrier; consumers arrive on `empty` when done
//     and the producer refills. The first stages' codes are requested before waiting for the previous kernel.
//   * A consumer decodes its tile's words as the raw decode loop does (fp4_fragment_raw: bits placed, no multiply;
//     activations prepared times kRawActScale, sums times kRawOutScale), two mma per step (hi, lo), the group scale
//     once per chunk pair on the float32 sums (add_scaled). Weight fragments and activation fragments are 16-byte
//     shared-memory reads of consecutive lanes (no bank conflicts).
// H100 (docs/cuda.md, fourteenth session): 28672x8192 at M=16 86.6 -> 55.5-58.2 us through the backend, the
// prepare kernel included (this kernel alone 53.5); the staged register-fed loop it replaces needs 8 K splits and
// per-block staging there.
#include "backend/cuda/bulk_copy.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kStages = 3;                      // slots in flight
constexpr int kStageChunks = 4;                 // 64-column chunks per stage
constexpr int kTileBytes = kStageChunks * 512;  // one tile's codes of a stage
constexpr int kMinTiles = 8;                    // fewer consumer warps per SM: the staged loop (gemv_fp4.cu)
constexpr int kMaxTiles = 15;                   // + the producer: 512 threads, 128 registers

// A stage: the tiles' codes [T][kTileBytes], then the activations [hi, lo][token tile][8 k32 items][512 bytes].
__host__ __device__ constexpr int act_bytes(int nt) { return 2 * nt * 2 * kStageChunks * 512; }
constexpr int smem_bytes(int tiles, int nt) { return kStages * (tiles * kTileBytes + act_bytes(nt)) + 2 * kStages * 8; }

// NT n8 token tiles (1: 5..8 rows, 2: 9..16 rows).
template <int NT>
__global__ void __launch_bounds__(kWarp * (kMaxTiles + 1), 1) gemm_whole_k_kernel(GemmArgs p) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900) || defined(MMFP4_SIM)
  MMFP4_DYN_SMEM(unsigned char, smem);
  const int T = p.whole_k_tiles, XB = act_bytes(NT), SB = T * kTileBytes + XB;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * SB);
  uint64_t* empty = full + kStages;
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp;
  const int t0 = int(blockIdx.x) * T, tiles = min(T, p.w.n_tiles - t0);
  const int nq = (p.w.k_chunks + kStageChunks - 1) / kStageChunks;
  auto chunks_of = [&](int q) { return min(kStageChunks, p.w.k_chunks - q * kStageChunks); };
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], tiles);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (warp == T) {  // the producer
    const unsigned char* codes = static_cast<const unsigned char*>(p.w.data);
    auto copy_codes = [&](int q, int slot) {  // the warp's lanes, a tile each
      for (int w = lane; w < tiles; w += kWarp)
        bulk_copy_g2s(smem + slot * SB + w * kTileBytes,
                      codes + (int64_t(t0 + w) * p.w.k_chunks + q * kStageChunks) * 512, uint32_t(chunks_of(q) * 512),
                      &full[slot]);
    };
    auto copy_acts = [&](int q, int slot) {  // lane 0
      unsigned char* xs = smem + slot * SB + T * kTileBytes;
      for (int h = 0; h < 2; ++h)
        for (int t = 0; t < NT; ++t)
          bulk_copy_g2s(xs + (h * NT + t) * (2 * kStageChunks * 512),
                        static_cast<const unsigned char*>(h ? p.xb_lo : p.xb) +
                            (int64_t(t) * p.kb32 + 2 * kStageChunks * q) * 512,
                        uint32_t(2 * chunks_of(q) * 512), &full[slot]);
    };
    const int pre = min(kStages, nq);
    if (lane == 0)
      for (int q = 0; q < pre; ++q) mbar_expect_tx(&full[q], uint32_t(tiles * chunks_of(q) * 512));
    __syncwarp();
    for (int q = 0; q < pre; ++q) copy_codes(q, q);
    pdl_enter();  // the activations are the previous kernel's output
    if (lane == 0)
      for (int q = 0; q < pre; ++q) {
        mbar_arrive_expect_tx(&full[q], uint32_t(2 * NT * 2 * chunks_of(q) * 512));
        copy_acts(q, q);
      }
    for (int q = pre; q < nq; ++q) {
      const int slot = q % kStages;
      if (lane == 0) {
        mbar_wait(&empty[slot], ((q / kStages) & 1) ^ 1);  // the consumers' release of stage q - kStages
        mbar_arrive_expect_tx(&full[slot], uint32_t((tiles + 2 * NT * 2) * chunks_of(q) * 512));
        copy_acts(q, slot);
      }
      __syncwarp();
      copy_codes(q, slot);
    }
    return;
  }

  pdl_enter();
  if (warp >= tiles) return;
  const int g = lane >> 2, c = lane & 3, nt = t0 + warp, cshift = p.gshift - 1;  // 2^cshift chunks per scale
  const uint32_t* sp = p.w.scales + int64_t(nt) * p.w.groups * 8 + g;
  auto scales_of = [&](int q, uint32_t (&sw)[kStageChunks / 2]) {
#pragma unroll
    for (int pp = 0; pp < kStageChunks / 2; ++pp) {
      const int kc = q * kStageChunks + 2 * pp;
      sw[pp] = q < nq && kc < p.w.k_chunks ? __ldg(sp + (kc >> cshift) * 8) : 0u;
    }
  };
  float acc[NT][4] = {};
  uint32_t sw[kStageChunks / 2];
  scales_of(0, sw);
  for (int q = 0; q < nq; ++q) {
    const int slot = q % kStages, nch = chunks_of(q);
    uint32_t sw_next[kStageChunks / 2];
    scales_of(q + 1, sw_next);
    mbar_wait(&full[slot], (q / kStages) & 1);
    const unsigned char* base = smem + slot * SB;
    const uint4* xs = reinterpret_cast<const uint4*>(base + T * kTileBytes) + lane;
#pragma unroll
    for (int pp = 0; pp < kStageChunks / 2; ++pp) {
      if (2 * pp >= nch) break;
      float part[NT][4] = {};
#pragma unroll
      for (int v = 0; v < 2; ++v) {
        if (2 * pp + v >= nch) break;
        const uint4 w = *reinterpret_cast<const uint4*>(base + warp * kTileBytes + (2 * pp + v) * 512 + lane * 16);
#pragma unroll
        for (int b = 0; b < 2; ++b) {
          uint32_t a0[4], a1[4];
          fp4_fragment_raw(word_of(w, 2 * b), a0);
          fp4_fragment_raw(word_of(w, 2 * b + 1), a1);
          const int kb = 2 * (2 * pp + v) + b;  // k32 item of the stage
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            const uint4 xh = xs[(t * 2 * kStageChunks + kb) * kWarp];
            mma_bf16_16816(part[t], a0, xh.x, xh.y);
            mma_bf16_16816(part[t], a1, xh.z, xh.w);
            const uint4 xl = xs[((NT + t) * 2 * kStageChunks + kb) * kWarp];
            mma_bf16_16816(part[t], a0, xl.x, xl.y);
            mma_bf16_16816(part[t], a1, xl.z, xl.w);
          }
        }
      }
      add_scaled(acc, part, sw[pp]);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[slot]);
#pragma unroll
    for (int pp = 0; pp < kStageChunks / 2; ++pp) sw[pp] = sw_next[pp];
  }
  // This lane holds D[row g (+8)][token 8t + 2c (+1)].
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int tok = 8 * t + 2 * c + (i & 1), n = nt * 16 + g + (i < 2 ? 0 : 8);
      if (tok < p.m && n < p.w.n) {
        float* o = p.y + int64_t(tok) * p.y_stride + n;
        const float v = acc[t][i] * kRawOutScale;
        *o = p.accumulate ? *o + v : v;
      }
    }
#endif
}

template <int NT>
void launch_nt(const GemmArgs& a, cudaStream_t s) {
  smem_opt_in<gemm_whole_k_kernel<NT>>(smem_bytes(kMaxTiles, NT), "linear (whole K)");
  const int blocks = (a.w.n_tiles + a.whole_k_tiles - 1) / a.whole_k_tiles;
  MMFP4_LAUNCH(dim3(unsigned(blocks)), dim3(unsigned(kWarp * (a.whole_k_tiles + 1))),
               size_t(smem_bytes(a.whole_k_tiles, NT)), s, gemm_whole_k_kernel<NT>)(a);
}

}  // namespace

int gemm_whole_k_tiles(const GemmWeight& w, int sms) {
  if (sms <= 0) return 0;
  const int t = (w.n_tiles + sms - 1) / sms;
  return t >= kMinTiles && t <= kMaxTiles ? t : 0;
}

bool gemm_whole_k_ok(const GemmArgs& a) {
  return a.w.kind == WKind::Fp4 && a.w.layout == 2 && !a.tiles.tiles && !a.heads && (a.nt == 1 || a.nt == 2) &&
         a.grid_tiles == 1 && a.m <= 8 * a.nt && a.xb && a.xb_lo && a.kb32 == 2 * a.w.k_chunks && a.gshift >= 2 &&
         a.whole_k_tiles >= 1 && a.whole_k_tiles <= kMaxTiles && a.splits == 1 && !a.route.ids;
}

void launch_gemm_whole_k(const GemmArgs& a, cudaStream_t s) {
  if (!gemm_whole_k_ok(a))
    fail("linear (whole K): MMFP4 layout 2 in power-of-two groups of >= 128 columns, a plain linear of one token "
         "tile of 8 or 16 rows with hi + lo activations, 1..", kMaxTiles, " tiles per block");
  a.nt == 1 ? launch_nt<1>(a, s) : launch_nt<2>(a, s);
  MMFP4_CUDA_LAUNCHED("linear (whole K) W [", a.w.n, ", ", a.w.k, "], ", a.m, " rows, ", a.whole_k_tiles,
                      " tiles per block");
}

}  // namespace mmfp4::cuda
