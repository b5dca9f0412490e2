// The in-kernel staging of a decode GEMM's activations (GemmArgs::stage), shared by the staged loops of
// gemv_fp4.cu and the whole-K launch of 1..4 rows (gemv_whole_k.cu): one definition, so both give the same bits.
#pragma once

#include "backend/cuda/activations.cuh"

namespace mmfp4::cuda {

// Staged activations (GemmArgs::stage): the block converts rows [row0, row0 + rows) of its token tile, columns
// [k0, k0 + klen) of its K split, into shared memory: hi [stage_rows][stage_stride], lo at stage_lo. A row is
// stage_stride = klen + 32 values, so the 8 lanes of an LDS.128 phase (two rows, 64 bytes each) hit all 32 banks.
// pre multiplies the staged values (a power of two: kRawActScale for the raw loop, else 1), not norm_out.
// The first 256 threads of the block do the work (the staged loops' blocks; the whole-K blocks have 288..512
// threads: the same thread-to-row mapping, so the same sums of squares), all of them reach its barriers.
// BATCH > 0 (the whole-K launch, GemmArgs::stage_batch): the conversion is spread over all the block's threads, each
// loading BATCH 8-column pieces before it converts and stores any, so that a thread's loads are in flight together
// (with a store between them, as in the per-row loop, each load waits for the previous one: a round trip through L2
// per piece). The values are the same bits either way; the sums of squares keep the 256-thread mapping. The decode
// GEMV's staged loops (gemv_fp4.cu, 256 threads) keep the per-row loop: batches of 2 measured slower there on the H100
// (q_b, expert gate_up, 28672x8192 at 2..8 rows +0.1..0.9 us; decode batch 4 and 8 -1%).
template <int BATCH = 0>
__device__ __forceinline__ void stage_activations(const GemmArgs& p, int row0, int rows, int k0, int klen,
                                                  uint16_t* sm, float pre) {
  constexpr int kStageThreads = 256;
  const int per_row = klen / 8, S = p.stage_lo;
  __shared__ float row_inv[16];  // stage_rows <= 16
  const int cols = p.prep.k_valid;
  if (p.norm_w) {
    // Sums of squares of all staged rows at once, every row's loads in flight together: the staged rows rounded up
    // to a power of two R share the block, G = 256 / R threads per row, each striding the row by G (16-byte
    // loads where aligned) in unrolled batches; then sums in segments of min(G, 32) lanes and per row over its
    // segments in order. A row's sum does not depend on the other rows (batch == singles) and is the same on every
    // run; its order differs from rmsnorm.cu's (one block per row), which prefill uses.
    __shared__ float red[16];
    int R = 1;
    while (R < p.stage_rows) R *= 2;
    const int G = kStageThreads / R, r = int(threadIdx.x) / G, j = int(threadIdx.x) % G, seg = G < kWarp ? G : kWarp;
    float ss = 0.0f;
    const int64_t src = r < rows && r < p.stage_rows ? prep_source_row(p.prep, row0 + r) : -1;
    if (src >= 0) {
      const float* xr = p.prep.x + src * p.prep.x_stride;
      if (p.stage_vec && cols % 4 == 0) {
#pragma unroll 8
        for (int c = j; c < cols / 4; c += G) {
          const float4 v = *reinterpret_cast<const float4*>(xr + 4 * c);
          ss = fmaf(v.x, v.x, ss);
          ss = fmaf(v.y, v.y, ss);
          ss = fmaf(v.z, v.z, ss);
          ss = fmaf(v.w, v.w, ss);
        }
      } else {
#pragma unroll 8
        for (int c = j; c < cols; c += G) ss = fmaf(xr[c], xr[c], ss);
      }
    }
    for (int o = seg / 2; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (int(threadIdx.x) < kStageThreads && int(threadIdx.x) % seg == 0) red[threadIdx.x / seg] = ss;
    __syncthreads();
    if (int(threadIdx.x) < p.stage_rows) {
      const int per = G / seg;
      float t = 0.0f;
      for (int q = 0; q < per; ++q) t += red[threadIdx.x * per + q];
      row_inv[threadIdx.x] = 1.0f / sqrtf(t / float(cols) + p.norm_eps);
    }
    __syncthreads();
  }
  if constexpr (BATCH > 0) {
    // Piece i = row i / per_row, columns 8 (i % per_row) ..., pieces threadIdx, + blockDim, ... in batches.
    const int total = p.stage_rows * per_row, step = int(blockDim.x);
    for (int i0 = int(threadIdx.x); i0 < total; i0 += BATCH * step) {
      float v[BATCH][8];
#pragma unroll
      for (int u = 0; u < BATCH; ++u) {
        const int i = i0 + u * step, r = i / per_row;
        const int64_t src = i < total && r < rows ? prep_source_row(p.prep, row0 + r) : -1;
        prep_load8(p.prep, src, k0 + 8 * (i - r * per_row), p.stage_vec, v[u]);
      }
#pragma unroll
      for (int u = 0; u < BATCH; ++u) {
        const int i = i0 + u * step, r = i / per_row, q = i - r * per_row;
        if (i >= total) break;
        if (p.norm_w) {
          const int64_t src = r < rows ? prep_source_row(p.prep, row0 + r) : -1;
#pragma unroll
          for (int j = 0; j < 8; ++j)
            if (k0 + 8 * q + j < cols) v[u][j] = v[u][j] * row_inv[r] * p.norm_w[k0 + 8 * q + j];
          if (blockIdx.x == 0 && src >= 0)  // the normalised rows, for the later readers (as below)
#pragma unroll
            for (int j = 0; j < 8; ++j)
              if (k0 + 8 * q + j < cols) p.norm_out[src * p.norm_out_stride + k0 + 8 * q + j] = v[u][j];
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) v[u][j] *= pre;
        uint32_t hi[4], lo[4];
        prep_split8(v[u], p.prep.f16, hi, lo);
        uint16_t* hi_row = sm + r * p.stage_stride;
        *reinterpret_cast<uint4*>(hi_row + 8 * q) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
        if (p.prep.xb_lo) *reinterpret_cast<uint4*>(hi_row + S + 8 * q) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
      }
    }
  } else {
  // Thread -> staged row r (the rows rounded up to a power of two share the block, G threads per row) and the row's
  // 8-column pieces threadIdx % G, + G, ...: no division per piece, the row's source and norm factor read once.
    int R = 1;
    while (R < p.stage_rows) R *= 2;
    const int G = kStageThreads / R, r = int(threadIdx.x) / G;
    if (r < p.stage_rows) {
      const int64_t src = r < rows ? prep_source_row(p.prep, row0 + r) : -1;
      const float inv = p.norm_w ? row_inv[r] : 1.0f;
      uint16_t* hi_row = sm + r * p.stage_stride;  // the low halves at hi_row + S
      for (int q = int(threadIdx.x) % G; q < per_row; q += G) {
        float v[8];
        prep_load8(p.prep, src, k0 + 8 * q, p.stage_vec, v);
        if (p.norm_w) {
#pragma unroll
          for (int i = 0; i < 8; ++i)
            if (k0 + 8 * q + i < cols) v[i] = v[i] * inv * p.norm_w[k0 + 8 * q + i];
          // The normalised rows, for the later readers: the blocks of row block 0 write the columns they stage
          // (their K splits cover the row), so no block reads a row twice.
          if (blockIdx.x == 0 && src >= 0)
#pragma unroll
            for (int i = 0; i < 8; ++i)
              if (k0 + 8 * q + i < cols) p.norm_out[src * p.norm_out_stride + k0 + 8 * q + i] = v[i];
        }
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] *= pre;
        uint32_t hi[4], lo[4];
        prep_split8(v, p.prep.f16, hi, lo);
        *reinterpret_cast<uint4*>(hi_row + 8 * q) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
        if (p.prep.xb_lo) *reinterpret_cast<uint4*>(hi_row + S + 8 * q) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
      }
    }
  }
  __syncthreads();
}

}  // namespace mmfp4::cuda
