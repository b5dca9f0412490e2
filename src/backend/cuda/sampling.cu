// Greedy sampling on the device: argmax of each row, with the host sampler's answer on every input (sampler.cpp's
// scan: best = 0, then i wins where v[i] > v[best]): the lowest index of the largest value, NaNs never winning, and
// 0 where v[0] is NaN (nothing compares greater) or every value is NaN.
//
// A row is split into chunks of whole 1,024-column pieces, one block each (grid: chunks x rows), so that one row
// of a 154,880-token vocabulary is read by ~150 blocks with a 16-byte load or two per thread: one block per row
// took ~120 us at batch 1 (one SM's 256 threads, one load in flight each, 605 loads deep), 3.7% of a GLM-4.7-Flash
// decode step. Each block writes its chunk's (value, index); the last block of the row (splitk_last) merges them.
#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kArgmaxThreads = 256;
constexpr int kArgmaxPiece = kArgmaxThreads * 4;  // columns a block covers per round (a float4 per thread)

struct Best {
  float v;
  int i;  // -1: nothing (only NaNs seen)
};

__device__ __forceinline__ bool is_nan(float v) { return v != v; }

// The merge order: a larger value, or the same value at a lower index; NaN is never a candidate.
__device__ __forceinline__ void take(Best& b, float v, int i) {
  if (i >= 0 && !is_nan(v) && (b.i < 0 || v > b.v || (v == b.v && i < b.i))) b = {v, i};
}

__device__ __forceinline__ Best block_best(Best b, Best* sb) {
  for (int o = 16; o > 0; o >>= 1) take(b, __shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sb[warp] = b;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kArgmaxThreads / 32; ++w) take(b, sb[w].v, sb[w].i);
  return b;  // the block's best in thread 0
}

// Block (c, r): columns [c * chunk, min(cols, (c + 1) * chunk)) of row r; part[r * chunks + c] its best;
// vec: rows start 16-byte aligned (x and the stride), so whole float4 loads.
__global__ void __launch_bounds__(kArgmaxThreads) argmax_kernel(const float* x, int64_t xs, int cols, int chunk,
                                                                bool vec, Best* part, int32_t* ctr, int32_t* ids) {
  pdl_enter();
  __shared__ Best sb[kArgmaxThreads / 32];
  const int chunks = gridDim.x, r = blockIdx.y;
  const float* row = x + int64_t(r) * xs;
  const int c0 = blockIdx.x * chunk, c1 = min(cols, c0 + chunk);
  Best b{-INFINITY, -1};
  // Each thread's columns ascend, so within a thread a later equal value never replaces an earlier one.
  if (vec) {
    constexpr int U = 4;  // loads in flight per thread
    for (int c = c0 + 4 * threadIdx.x; c < c1; c += U * kArgmaxPiece) {
      float4 q[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int cu = c + u * kArgmaxPiece;
        q[u] = cu + 3 < c1 ? __ldcg(reinterpret_cast<const float4*>(row + cu)) : make_float4(NAN, NAN, NAN, NAN);
        if (cu < c1 && cu + 3 >= c1) {  // the row's last, partial piece
          q[u].x = row[cu];
          if (cu + 1 < c1) q[u].y = row[cu + 1];
          if (cu + 2 < c1) q[u].z = row[cu + 2];
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int cu = c + u * kArgmaxPiece;
        take(b, q[u].x, cu), take(b, q[u].y, cu + 1), take(b, q[u].z, cu + 2), take(b, q[u].w, cu + 3);
      }
    }
  } else {
    for (int c = c0 + threadIdx.x; c < c1; c += kArgmaxThreads) take(b, __ldcg(row + c), c);
  }
  b = block_best(b, sb);
  if (chunks == 1) {
    if (threadIdx.x == 0) ids[r] = is_nan(row[0]) || b.i < 0 ? 0 : b.i;
    return;
  }
  if (threadIdx.x == 0) part[int64_t(r) * chunks + blockIdx.x] = b;
  if (!splitk_last(ctr + r, chunks)) return;
  if (threadIdx.x == 0) {
    Best m{-INFINITY, -1};
    for (int c = 0; c < chunks; ++c) {  // chunk order; the merge is a total order, so any order gives the same
      const Best* p = part + int64_t(r) * chunks + c;
      take(m, __ldcg(&p->v), __ldcg(&p->i));
    }
    ids[r] = is_nan(row[0]) || m.i < 0 ? 0 : m.i;
  }
}

}  // namespace

int argmax_chunks(int rows, int cols, int sms) {
  // About two blocks per SM over the batch, each a whole number of 1,024-column pieces.
  const int pieces = (cols + kArgmaxPiece - 1) / kArgmaxPiece;
  const int want = std::max(1, 2 * sms / std::max(rows, 1));
  const int per = (pieces + want - 1) / want;
  return (pieces + per - 1) / per;
}

int64_t argmax_part_bytes(int rows, int sms) {
  // rows x chunks <= max(rows, 2 * sms) whatever the columns (argmax_chunks makes at most max(1, 2 * sms / rows)).
  return std::max<int64_t>(rows, 2 * int64_t(sms)) * int64_t(sizeof(Best));
}

void launch_argmax_rows(const float* x, int64_t xs, int rows, int cols, int sms, void* part_buf, int32_t* ctr,
                        int32_t* ids, cudaStream_t s) {
  if (rows == 0) return;
  if (cols <= 0) fail("argmax: a row of ", cols, " columns");
  const int chunks = argmax_chunks(rows, cols, sms);
  const int pieces = (cols + kArgmaxPiece - 1) / kArgmaxPiece;
  const int chunk = (pieces + chunks - 1) / chunks * kArgmaxPiece;
  auto* part = static_cast<Best*>(part_buf);
  const bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0 && xs % 4 == 0;
  MMFP4_LAUNCH(dim3(unsigned(chunks), unsigned(rows)), kArgmaxThreads, 0, s, argmax_kernel)(x, xs, cols, chunk, vec,
                                                                                          part, ctr, ids);
  MMFP4_CUDA_LAUNCHED("argmax ", rows, " rows x ", cols, " in ", chunks, " chunks");
}

}  // namespace mmfp4::cuda
