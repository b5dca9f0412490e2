// MoE expert computation over tokens grouped by expert, all on the device (no host round trip, graph-safe):
//   plan:    (token, slot) pairs sorted by expert, each expert's rows padded to a multiple of 8 (an mma token
//            tile), and a table of token tiles {expert, first row, rows}; pos[t * K + j] = sorted row of a pair.
//   gemms:   gate/up/down run as grouped GEMMs over the tile table (gemv_fp4.cu), each expert's weights read
//            once per tile, never per token.
//   combine: out[t] += sum_j w[t, j] * d[pos[t * K + j]] in slot order, so a token's result does not depend on
//            which other tokens share the batch.
// The plan is one block: counts by atomics (order-free), then each expert's rows placed by one thread scanning
// the pairs in order, so the sorted order (and every sum after it) is the same on every run.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

constexpr int kPlanThreads = 1024;
constexpr int kMaxPlanExperts = 1024;

__global__ void __launch_bounds__(kPlanThreads) plan_kernel(const int32_t* ids, int n, int E, int align, int tile_rows,
                                                            int32_t* sorted, int rows_pad, int32_t* pos,
                                                            int32_t* tiles, int32_t* tile_count, int max_tiles) {
  pdl_enter();
  __shared__ int count[kMaxPlanExperts];
  __shared__ int offset[kMaxPlanExperts];
  for (int e = threadIdx.x; e < E; e += blockDim.x) count[e] = 0;
  for (int i = threadIdx.x; i < rows_pad; i += blockDim.x) sorted[i] = -1;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int e = ids[i];
    if (e >= 0 && e < E) atomicAdd(&count[e], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int off = 0, nt = 0;
    for (int e = 0; e < E; ++e) {
      offset[e] = off;
      for (int r = 0; r < count[e] && nt < max_tiles; r += tile_rows, ++nt) {
        tiles[3 * nt] = e;
        tiles[3 * nt + 1] = off + r;
        tiles[3 * nt + 2] = min(tile_rows, count[e] - r);
      }
      off += (count[e] + align - 1) / align * align;
    }
    *tile_count = nt;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    int r = offset[e];
    for (int i = 0; i < n; ++i)
      if (ids[i] == e) {
        sorted[r] = i;
        pos[i] = r;
        ++r;
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
