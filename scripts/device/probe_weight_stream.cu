// Probe (device measurement, not part of the build): does the order in which the decode GEMV's warps stream the
// tiled MMFP4 weights cap the bandwidth below a plain streaming read? Pure loads, no math, the GEMV's grid.
//   contiguous   grid-strided 16-byte loads over the region (the streaming-read ceiling of the benchmarks)
//   tile-major   the repacked layout: warp = one 16-row tile, its 64-column chunks 512 bytes apart, so a block's 8
//                warps read 8 streams 64 KB apart (K = 8192) and the GPU ~3,000 streams at once
//   chunk-major  the same work with the chunks of all tiles interleaved: a block's warps read one contiguous 4 KB
//                piece per chunk, neighbouring blocks the next ones
// 28672 x 8192 MMFP4 codes (117 MB; scales left out), 8 copies rotated so that no launch finds its bytes in L2.
//   nvcc -O3 -arch=sm_90a -o /tmp/probe_ws scripts/device/probe_weight_stream.cu && /tmp/probe_ws
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#define CHECK(x)                                                                    \
  do {                                                                              \
    cudaError_t e_ = (x);                                                           \
    if (e_ != cudaSuccess) {                                                        \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      return 1;                                                                     \
    }                                                                               \
  } while (0)

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__global__ void contiguous_kernel(const uint4* p, int64_t n, uint4* sink) {
  uint4 a = make_uint4(0, 0, 0, 0);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = ld_stream(p + i);
    a.x ^= v.x, a.y ^= v.y, a.z ^= v.z, a.w ^= v.w;
  }
  if ((a.x ^ a.y ^ a.z ^ a.w) == 0x9e3779b9u) sink[blockIdx.x] = a;
}

// CHUNK_MAJOR: chunk kc of tile nt at (kc * n_tiles + nt) * 32 uint4, else (nt * k_chunks + kc) * 32.
template <int U, bool CHUNK_MAJOR>
__global__ void __launch_bounds__(256, 3) tiles_kernel(const uint4* w, int n_tiles, int k_chunks, int cps, uint4* sink) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int nt = blockIdx.x * 8 + warp;
  const int kc0 = blockIdx.z * cps, kc1 = min(k_chunks, kc0 + cps);
  uint4 a = make_uint4(0, 0, 0, 0);
  if (nt < n_tiles) {
    for (int kc = kc0; kc < kc1; kc += U) {
      uint4 v[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int k = min(kc + u, kc1 - 1);
        const int64_t off = CHUNK_MAJOR ? (int64_t(k) * n_tiles + nt) * 32 : (int64_t(nt) * k_chunks + k) * 32;
        v[u] = ld_stream(w + off + lane);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) a.x ^= v[u].x, a.y ^= v[u].y, a.z ^= v[u].z, a.w ^= v[u].w;
    }
  }
  if ((a.x ^ a.y ^ a.z ^ a.w) == 0x9e3779b9u) sink[blockIdx.x] = a;
}

int main() {
  const int n_tiles = 28672 / 16, k_chunks = 8192 / 64, copies = 8;
  const int64_t region = int64_t(n_tiles) * k_chunks * 512;  // bytes
  uint4* buf = nullptr;
  uint4* sink = nullptr;
  CHECK(cudaMalloc(&buf, region * copies));
  CHECK(cudaMalloc(&sink, 1 << 20));
  CHECK(cudaMemset(buf, 0x5a, region * copies));
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  std::printf("device %s, %d SMs; region %.1f MB x %d copies\n", prop.name, prop.multiProcessorCount, region / 1e6,
              copies);
  auto timed = [&](const char* name, auto&& launch) -> int {
    for (int i = 0; i < copies; ++i) launch(buf + (region / 16) * i);  // warm-up
    float best = 1e30f;
    for (int r = 0; r < 5; ++r) {
      CHECK(cudaEventRecord(e0));
      for (int i = 0; i < 4 * copies; ++i) launch(buf + (region / 16) * (i % copies));
      CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      best = ms < best ? ms : best;
    }
    CHECK(cudaGetLastError());
    const double us = best * 1e3 / (4 * copies);
    std::printf("%-40s %8.2f us  %6.3f TB/s\n", name, us, region / (us * 1e-6) / 1e12);
    return 0;
  };
  const int sms = prop.multiProcessorCount;
  timed("contiguous (SMs x 8 blocks of 512)", [&](const uint4* p) {
    contiguous_kernel<<<sms * 8, 512>>>(p, region / 16, sink);
  });
  for (int splits : {1, 2, 5, 7}) {
    const int cps = (k_chunks + splits - 1) / splits;
    const dim3 grid((n_tiles + 7) / 8, 1, (k_chunks + cps - 1) / cps);
    char name[96];
    std::snprintf(name, sizeof(name), "tile-major  U=8  %d splits", splits);
    timed(name, [&](const uint4* p) { tiles_kernel<8, false><<<grid, 256>>>(p, n_tiles, k_chunks, cps, sink); });
    std::snprintf(name, sizeof(name), "chunk-major U=8  %d splits", splits);
    timed(name, [&](const uint4* p) { tiles_kernel<8, true><<<grid, 256>>>(p, n_tiles, k_chunks, cps, sink); });
    std::snprintf(name, sizeof(name), "tile-major  U=16 %d splits", splits);
    timed(name, [&](const uint4* p) { tiles_kernel<16, false><<<grid, 256>>>(p, n_tiles, k_chunks, cps, sink); });
    std::snprintf(name, sizeof(name), "chunk-major U=16 %d splits", splits);
    timed(name, [&](const uint4* p) { tiles_kernel<16, true><<<grid, 256>>>(p, n_tiles, k_chunks, cps, sink); });
  }
  return 0;
}
