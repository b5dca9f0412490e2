// Absorbed MLA, query side: q_lat[t, h] = W_UK_h^T q_nope[t, h], with W_UK_h = rows [h(nope+v), h(nope+v)+nope) of
// the stored kv_b_proj [heads * (nope + v), R] (rotated domain when kv_b is rotated: the cache holds H c then).
// The product contracts over the weight's rows, so a thread owns one latent column j and walks the head's nope rows
// (weights read once per block of tokens, float32 accumulation in row order as the CPU reference). The fast path
// below reads MMFP4 weights as whole tile fragments instead.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/mla_prepare.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kTokens = 8;   // tokens per block: each weight element is read once per 8 tokens
constexpr int kCols = 64;    // latent columns per block: two per lane
constexpr int kWarps = 8;    // warps split the head's nope rows (i = warp, warp + 8, ...)

// Block (head h, 64 latent columns, 8 tokens). Each warp sums its share of the rows for every column and token;
// the 8 partial sums are added in warp order (fixed, so results are deterministic). Decode (1 token, 20 heads,
// R = 512) gets 160 blocks of 8 warps, each lane with a dozen independent weight loads in flight.
__global__ void __launch_bounds__(kWarps * 32) absorb_q_kernel(const float* q_nope, int64_t qs, int T, int heads,
                                                                 int nope, int v, GemmWeight w, int R, float* q_lat,
                                                                 int64_t ls) {
  pdl_enter();
  __shared__ float red[kWarps][kTokens][kCols];
  const int h = blockIdx.x, j0 = blockIdx.y * kCols, t0 = blockIdx.z * kTokens;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = h * (nope + v);
  const int ja = j0 + lane, jb = j0 + 32 + lane;
  float acc[kTokens][2] = {};
#pragma unroll 4
  for (int i = warp; i < nope; i += kWarps) {
    const float wa = ja < R ? weight_at(w, 0, row0 + i, ja) : 0.0f;
    const float wb = jb < R ? weight_at(w, 0, row0 + i, jb) : 0.0f;
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt)
      if (t0 + tt < T) {
        const float q = q_nope[(int64_t(t0 + tt) * heads + h) * qs + i];
        acc[tt][0] = fmaf(q, wa, acc[tt][0]);
        acc[tt][1] = fmaf(q, wb, acc[tt][1]);
      }
  }
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
    red[warp][tt][lane] = acc[tt][0];
    red[warp][tt][32 + lane] = acc[tt][1];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kTokens * kCols; idx += blockDim.x) {
    const int tt = idx / kCols, jj = idx % kCols;
    if (t0 + tt >= T || j0 + jj >= R) continue;
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kWarps; ++k) s += red[k][tt][jj];
    q_lat[(int64_t(t0 + tt) * heads + h) * ls + j0 + jj] = s;
  }
}

// Fast path (FastPaths::absorb): MMFP4 weights in the tile layout of repack.h, read as the 16-byte fragments the
// GEMM reads (one coalesced load per lane per 16x64 tile, instead of one 4-byte load per weight element). A lane
// holds rows g and g + 8 of the tile and 16 columns (32b + 8c + 0..7, b = 0, 1); it folds the group scale into the
// query coefficient of its row (q * s, once per tile and token) and accumulates code * coefficient per column.
// Block (head, 64-column chunk, kFastTokens tokens): its kFastWarps warps split the head's row tiles, so at decode
// (20 heads x 8 chunks = 160 blocks) each warp has all of its ~3 tile loads in flight at once. Sums: over the 8
// row lanes by an xor butterfly (every lane gets the same bits), then over warps in warp order: deterministic.
constexpr int kFastWarps = 4;
constexpr int kFastTokens = 4;

// Block (head h, chunk kc, tokens from t0) of the tile kernel.
__device__ __forceinline__ void absorb_q_tiles_block(const float* q_nope, int64_t qs, int T, int heads, int nope,
                                                     int v, const GemmWeight& w, int R, float* q_lat, int64_t ls,
                                                     int h, int kc, int t0) {
  __shared__ float red[kFastWarps][kFastTokens][64];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, c = lane & 3;
  const int row0 = h * (nope + v);  // the head's first W_UK row; its rows are [row0, row0 + nope)
  const int tile_lo = row0 / 16, tile_hi = (row0 + nope + 15) / 16;
  const int ntok = min(kFastTokens, T - t0);
  // The group of each 32-column half of the chunk (group sizes are multiples of 32 on this path).
  const int grp[2] = {(kc * 64) / w.group_size, (kc * 64 + 32) / w.group_size};
  const uint4* codes = static_cast<const uint4*>(w.data);
  float acc[kFastTokens][16];
#pragma unroll
  for (int tt = 0; tt < kFastTokens; ++tt)
#pragma unroll
    for (int i = 0; i < 16; ++i) acc[tt][i] = 0.0f;

  for (int nt = tile_lo + warp; nt < tile_hi; nt += kFastWarps) {
    const uint4 q4 = ld_stream(codes + (int64_t(nt) * w.k_chunks + kc) * 32 + lane);
    const uint32_t* sp = w.scales + int64_t(nt) * w.groups * 8 + g;
    const int r_lo = nt * 16 + g - row0, r_hi = r_lo + 8;  // head-local rows of this lane (masked outside the head)
    const bool ok_lo = r_lo >= 0 && r_lo < nope, ok_hi = r_hi >= 0 && r_hi < nope;
    float coef[kFastTokens][2][2];  // [token][b][row g / g + 8] = q * scale
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      const uint32_t sw = __ldg(sp + grp[b] * 8);
      const float s_lo = f16_bits_to_f32(uint16_t(sw & 0xFFFF)), s_hi = f16_bits_to_f32(uint16_t(sw >> 16));
#pragma unroll
      for (int tt = 0; tt < kFastTokens; ++tt) {
        const float* qr = q_nope + (int64_t(t0 + tt) * heads + h) * qs;
        const bool tok = tt < ntok;
        coef[tt][b][0] = (tok && ok_lo) ? qr[r_lo] * s_lo : 0.0f;
        coef[tt][b][1] = (tok && ok_hi) ? qr[r_hi] * s_hi : 0.0f;
      }
    }
    const uint32_t wd[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {  // word j = 2b + s (mma step s of 32-column half b)
      const int b = j >> 1, s = j & 1;
      uint32_t pairs[4];
      if (w.layout == 2)
        fp4_fragment_v2(wd[j], pairs);
      else
        fp4_fragment(wd[j], pairs);
#pragma unroll
      for (int i = 0; i < 4; ++i) {  // pair i = 2 pr + hi: row g + 8 hi, columns 32b + 8c + 4s + 2pr + {0, 1}
        const int pr = i >> 1, hi = i & 1;
        const uint32_t bf = pairs[i];
        const float ve = __uint_as_float(bf << 16), vo = __uint_as_float(bf & 0xFFFF0000u);
        const int col = 8 * b + 4 * s + 2 * pr;  // acc index of column 32b + 8c + (4s + 2pr)
#pragma unroll
        for (int tt = 0; tt < kFastTokens; ++tt) {
          acc[tt][col] = fmaf(ve, coef[tt][b][hi], acc[tt][col]);
          acc[tt][col + 1] = fmaf(vo, coef[tt][b][hi], acc[tt][col + 1]);
        }
      }
    }
  }
  // Sum over the 8 row lanes g (lanes with the same c hold the same columns).
#pragma unroll
  for (int tt = 0; tt < kFastTokens; ++tt)
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      float x = acc[tt][i];
      x += __shfl_xor_sync(0xffffffffu, x, 4);
      x += __shfl_xor_sync(0xffffffffu, x, 8);
      x += __shfl_xor_sync(0xffffffffu, x, 16);
      acc[tt][i] = x;
    }
  if (g == 0) {
#pragma unroll
    for (int tt = 0; tt < kFastTokens; ++tt)
#pragma unroll
      for (int i = 0; i < 16; ++i) red[warp][tt][32 * (i >> 3) + 8 * c + (i & 7)] = acc[tt][i];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kFastTokens * 64; idx += blockDim.x) {
    const int tt = idx / 64, jj = idx % 64, j = kc * 64 + jj;
    if (tt >= ntok || j >= R) continue;
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kFastWarps; ++k) sum += red[k][tt][jj];
    q_lat[(int64_t(t0 + tt) * heads + h) * ls + j] = sum;
  }
}

__global__ void __launch_bounds__(kFastWarps * 32) absorb_q_tiles_kernel(const float* q_nope, int64_t qs, int T,
                                                                        int heads, int nope, int v, GemmWeight w,
                                                                        int R, float* q_lat, int64_t ls) {
  pdl_enter();
  absorb_q_tiles_block(q_nope, qs, T, heads, nope, v, w, R, q_lat, ls, blockIdx.x, blockIdx.y,
                       blockIdx.z * kFastTokens);
}

// The same launch with MLA's prepare rows as blocks of their own after the absorb blocks (FastPaths::mla_fuse): the
// two read and write disjoint data (absorb: q's nope columns -> q_lat; prepare: ckv, q's rope columns -> latent,
// cache), so one launch does both. Grid: heads x k_chunks x token groups absorb blocks (x fastest), then p.rows.
template <typename T>
__global__ void __launch_bounds__(kFastWarps * 32) absorb_prepare_kernel(const float* q_nope, int64_t qs, int Tn,
                                                                        int heads, int nope, int v, GemmWeight w,
                                                                        int R, float* q_lat, int64_t ls,
                                                                        MlaPrepArgs p) {
  pdl_enter();
  const int nabs = heads * w.k_chunks * ((Tn + kFastTokens - 1) / kFastTokens), b = blockIdx.x;
  if (b >= nabs) {
    mla_prepare_row<T>(p, b - nabs);
    return;
  }
  absorb_q_tiles_block(q_nope, qs, Tn, heads, nope, v, w, R, q_lat, ls, b % heads, (b / heads) % w.k_chunks,
                       b / (heads * w.k_chunks) * kFastTokens);
}

}  // namespace

void launch_mla_absorb_q_tiles(const float* q_nope, int64_t qs, int rows, int heads, int nope, int v,
                               const GemmWeight& w, int R, float* q_lat, int64_t ls, cudaStream_t s,
                               const MlaPrepArgs* prep) {
  const int T = rows / heads;
  if (T == 0) return;
  if (w.kind != WKind::Fp4 || w.group_size % 32 != 0) fail("mla_absorb_q (tiles): MMFP4 with groups of 32k only");
  if (prep) {
    if (mla_prepare_threads(prep->R) != kFastWarps * 32 || prep->rows != T)
      fail("mla_absorb_q (tiles) + mla_prepare: ", prep->rows, " rows of latent ", prep->R, " do not fit the launch");
    const unsigned blocks = unsigned(heads * w.k_chunks * ((T + kFastTokens - 1) / kFastTokens) + prep->rows);
    if (prep->cache_f32)
      MMFP4_LAUNCH(blocks, kFastWarps * 32, 0, s, absorb_prepare_kernel<float>)(q_nope, qs, T, heads, nope, v, w, R,
                                                                               q_lat, ls, *prep);
    else
      MMFP4_LAUNCH(blocks, kFastWarps * 32, 0, s, absorb_prepare_kernel<uint16_t>)(q_nope, qs, T, heads, nope, v, w,
                                                                                  R, q_lat, ls, *prep);
    MMFP4_CUDA_LAUNCHED("mla_absorb_q (tiles) + mla_prepare ", T, " tokens x ", heads, " heads, nope ", nope, ", R ",
                        R);
    return;
  }
  const dim3 grid(unsigned(heads), unsigned(w.k_chunks), unsigned((T + kFastTokens - 1) / kFastTokens));
  MMFP4_LAUNCH(grid, kFastWarps * 32, 0, s, absorb_q_tiles_kernel)(q_nope, qs, T, heads, nope, v, w, R, q_lat, ls);
  MMFP4_CUDA_LAUNCHED("mla_absorb_q (tiles) ", T, " tokens x ", heads, " heads, nope ", nope, ", R ", R);
}

void launch_mla_absorb_q(const float* q_nope, int64_t qs, int rows, int heads, int nope, int v, const GemmWeight& w,
                         int R, float* q_lat, int64_t ls, cudaStream_t s) {
  const int T = rows / heads;
  if (T == 0) return;
  const dim3 grid(unsigned(heads), unsigned((R + kCols - 1) / kCols), unsigned((T + kTokens - 1) / kTokens));
  MMFP4_LAUNCH(grid, kWarps * 32, 0, s, absorb_q_kernel)(q_nope, qs, T, heads, nope, v, w, R, q_lat, ls);
  MMFP4_CUDA_LAUNCHED("mla_absorb_q ", T, " tokens x ", heads, " heads, nope ", nope, ", R ", R);
}

}  // namespace mmfp4::cuda
