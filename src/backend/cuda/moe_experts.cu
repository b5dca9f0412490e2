// MoE expert computation over tokens grouped by expert, all on the device (no host round trip, graph-safe):
//   plan:    (token, slot) pairs sorted by expert, each expert's rows padded to a multiple of 8 (an mma token
//            tile), and a table of token tiles {expert, first row, rows}; pos[t * K + j] = sorted row of a pair.
//   gemms:   gate/up/down run as grouped GEMMs over the tile table (gemv_fp4.cu; at decode batches moe_stream.cu),
//            each expert's weights read once per tile, never per token.
//   combine: out[t] += sum_j w[t, j] * d[pos[t * K + j]] in slot order, so a token's result does not depend on
//            which other tokens share the batch.
// The plan is one block: counts by atomics (order-free), offsets by prefix sums, then each expert's rows placed in
// pair order by a warp, so the sorted order (and every sum after it) is the same on every run.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kPlanThreads = 1024;
constexpr int kMaxPlanExperts = 1024;
constexpr int kPlanChunk = 2048;  // pair ids staged in shared memory at a time

// Exclusive prefix sums of a[0..E) in place over the block (E <= kMaxPlanExperts), returning the total: each thread
// adds a contiguous run of entries, the runs' sums are scanned across warps, then each run is written out.
__device__ int block_exclusive_scan(int* a, int E, int* warp_sums) {
  const int per = (E + blockDim.x - 1) / blockDim.x, e0 = threadIdx.x * per;
  int local = 0;
  for (int e = e0; e < min(E, e0 + per); ++e) local += a[e];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
  int incl = local;
  for (int o = 1; o < kWarp; o <<= 1) {
    const int v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  if (lane == kWarp - 1) warp_sums[warp] = incl;
  __syncthreads();
  int before = 0, total = 0;
  for (int w = 0; w < nw; ++w) {
    if (w < warp) before += warp_sums[w];
    total += warp_sums[w];
  }
  int run = before + incl - local;
  __syncthreads();  // every thread has read its runs' inputs before any is overwritten
  for (int e = e0; e < min(E, e0 + per); ++e) {
    const int v = a[e];
    a[e] = run;
    run += v;
  }
  __syncthreads();
  return total;
}

// The plan, with the serial scans of the first version made parallel (same results): counts by atomics; the experts'
// padded row offsets and first tiles by prefix sums; each expert's rows placed in pair order by a warp, 32 pairs per
// step, a lane's place among its step's matches given by a ballot.
__global__ void __launch_bounds__(kPlanThreads) plan_kernel(const int32_t* ids, int n, int E, int align, int tile_rows,
                                                            int32_t* sorted, int rows_pad, int32_t* pos,
                                                            int32_t* tiles, int32_t* tile_count, int max_tiles) {
  pdl_enter();
  __shared__ int count[kMaxPlanExperts];
  __shared__ int row_off[kMaxPlanExperts];   // padded rows before expert e, then its next free row
  __shared__ int tile_off[kMaxPlanExperts];  // tiles before expert e
  __shared__ int warp_sums[kPlanThreads / kWarp];
  __shared__ int32_t chunk[kPlanChunk];
  for (int e = threadIdx.x; e < E; e += blockDim.x) count[e] = 0;
  for (int i = threadIdx.x; i < rows_pad; i += blockDim.x) sorted[i] = -1;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int e = ids[i];
    if (e >= 0 && e < E) atomicAdd(&count[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    row_off[e] = (count[e] + align - 1) / align * align;
    tile_off[e] = (count[e] + tile_rows - 1) / tile_rows;
  }
  __syncthreads();
  block_exclusive_scan(row_off, E, warp_sums);
  const int n_tiles = block_exclusive_scan(tile_off, E, warp_sums);
  for (int e = threadIdx.x; e < E; e += blockDim.x)
    for (int r = 0, nt = tile_off[e]; r < count[e] && nt < max_tiles; r += tile_rows, ++nt) {
      tiles[3 * nt] = e;
      tiles[3 * nt + 1] = row_off[e] + r;
      tiles[3 * nt + 2] = min(tile_rows, count[e] - r);
    }
  if (threadIdx.x == 0) *tile_count = min(n_tiles, max_tiles);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
  for (int c0 = 0; c0 < n; c0 += kPlanChunk) {
    const int cn = min(kPlanChunk, n - c0);
    __syncthreads();  // the previous chunk is placed
    for (int i = threadIdx.x; i < cn; i += blockDim.x) chunk[i] = ids[c0 + i];
    __syncthreads();
    for (int e = warp; e < E; e += nw) {
      if (count[e] == 0) continue;
      int r = row_off[e];
      for (int i0 = 0; i0 < cn; i0 += kWarp) {
        const bool mine = i0 + lane < cn && chunk[i0 + lane] == e;
        const unsigned m = __ballot_sync(0xffffffffu, mine);
        if (mine) {
          const int row = r + __popc(m & ((1u << lane) - 1u));
          sorted[row] = c0 + i0 + lane;
          pos[c0 + i0 + lane] = row;
        }
        r += __popc(m);
      }
      if (lane == 0) row_off[e] = r;  // only this warp reads expert e's offset
      __syncwarp();
    }
  }
}

__global__ void combine_kernel(const float* d, int64_t ds, const int32_t* pos, const float* w, int T, int K, int H,
                               float* out, int64_t os) {
  pdl_enter();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * H) return;
  const int t = int(i / H), c = int(i % H);
  float o = out[int64_t(t) * os + c];
  for (int j = 0; j < K; ++j) {
    const float y = w[t * K + j] * d[int64_t(pos ? pos[t * K + j] : t * K + j) * ds + c];
    o += y;
  }
  out[int64_t(t) * os + c] = o;
}

}  // namespace

void launch_moe_plan(const int32_t* ids, int T, int K, int E, int align, int tile_rows, int32_t* sorted, int32_t* pos,
                     int32_t* tiles, int32_t* tile_count, int max_tiles, cudaStream_t s) {
  if (E > kMaxPlanExperts) fail("moe: ", E, " experts exceed the CUDA planner's ", kMaxPlanExperts);
  const int n = T * K;
  const int rows_pad = (n + E * (align - 1) + 7) / 8 * 8;
  // Decode (a few pairs): 128 threads; the loops stride over whatever the block has.
  const int threads = n <= 256 && E <= 256 ? 128 : kPlanThreads;
  MMFP4_LAUNCH(1, threads, 0, s, plan_kernel)(ids, n, E, align, tile_rows, sorted, rows_pad, pos, tiles, tile_count,
                                         max_tiles);
  MMFP4_CUDA_LAUNCHED("moe plan ", T, " tokens x top ", K, " over ", E, " experts");
}

void launch_moe_combine(const float* d, int64_t ds, const int32_t* pos, const float* w, int T, int K, int H,
                        float* out, int64_t os, cudaStream_t s) {
  const int64_t n = int64_t(T) * H;
  if (n == 0) return;
  MMFP4_LAUNCH(unsigned((n + 255) / 256), 256, 0, s, combine_kernel)(d, ds, pos, w, T, K, H, out, os);
  MMFP4_CUDA_LAUNCHED("moe combine ", T, " tokens x ", K, " x ", H);
}

}  // namespace mmfp4::cuda
