// Probe (device measurement, not part of the build): the timeline of the engine's whole-K launch (gemv_whole_k.cu,
// included here with its trace hooks defined) on GLM's dense MLP (20480x2048) at M rows, launched back to back with
// PDL on rotating weight copies as bench_cuda_linear does. Thread 0 of each block stamps %globaltimer at: 0 start,
// 1 after the wait for the previous launch, 2 after staging the activations, 3 + q when stage q's codes have landed
// (consumer warp 0), 14 after its last stage; 5..16 rows: each launch after its own prepare launch, as in the
// backend. Printed per launch: min / median / max over blocks of each stamp in microseconds from the first traced
// launch's earliest start, and the time per launch.
// The stamps read no memory and divide nothing: the weight copies sit 32 MB apart from a 512 MB boundary, so a
// launch's copy is bits 25..28 of its weight pointer. (Until the seventeenth session the copy came from a 64-bit
// division by a size read from global memory; with such a stamp, never executed, the fp8 probe's launch measured
// 1.9 us slower, and this probe's launches ran 11.0 us against bench_cuda_linear's 9.6: its earlier timelines
// overstate the time before the loop.)
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc -o /tmp/probe_wkt \
//     scripts/device/probe_whole_k_trace.cu build-cuda/src/backend/cuda/libmmfp4_cuda.a build-cuda/src/core/libmmfp4_core.a
//   MMFP4_CUDA_WHOLEK_SLOTS=5 /tmp/probe_wkt [M]
//   (add -DMMFP4_PROBE_PREFETCH_AT=1 or 2 for the L2 prefetch of the next launch's codes, below)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe_util.cuh"
#include "probe_whole_k_args.cuh"

constexpr int kCopies = 16, kPoints = 16, kMaxBlocks = 160;
__device__ unsigned long long g_trace[kCopies * kMaxBlocks * kPoints];
__device__ long long g_clock[kCopies * kMaxBlocks * kPoints];  // clock64 at the same points (SM cycles)
constexpr int kCopyShift = 25;  // copies 32 MB apart, copy 0 on a 512 MB boundary
// The weight copy (0..kCopies-1) a launch reads.
__device__ __forceinline__ long long copy_of(const void* w) {
  return (reinterpret_cast<unsigned long long>(w) >> kCopyShift) & (kCopies - 1);
}

#define MMFP4_WHOLEK_TRACE(pt)                                                                                    \
  do {                                                                                                            \
    if (threadIdx.x == 0 && (pt) < kPoints) {                                                                     \
      const long long c = copy_of(p.w.data);                                                                      \
      g_trace[(c * kMaxBlocks + blockIdx.x) * kPoints + (pt)] = gtimer();                                         \
      g_clock[(c * kMaxBlocks + blockIdx.x) * kPoints + (pt)] = clock64();                                        \
    }                                                                                                             \
  } while (0)

// -DMMFP4_PROBE_PREFETCH_AT=1 or 2: the producer of each block asks L2 for its tiles' codes of the NEXT launch's
// weight copy (cp.async.bulk.prefetch.L2) after staging (1) or after its last copy (2): how long a launch takes when
// its codes come from L2 (what a plan that prefetches the next layer's weights during this one could give).
#ifdef MMFP4_PROBE_PREFETCH_AT
#define MMFP4_WHOLEK_PRODUCER(point)                                                                              \
  do {                                                                                                            \
    if ((point) == MMFP4_PROBE_PREFETCH_AT) {                                                                     \
      const unsigned long long w = reinterpret_cast<unsigned long long>(p.w.data);                                \
      const unsigned long long base = w & ~((1ull << (kCopyShift + 4)) - 1);                                      \
      const unsigned char* nxt = reinterpret_cast<const unsigned char*>(                                          \
          base + ((copy_of(p.w.data) + 1) % kCopies << kCopyShift)) + int64_t(t0) * p.w.k_chunks * 512;           \
      const long long bytes = int64_t(tiles) * p.w.k_chunks * 512;                                                \
      for (long long o = int64_t(lane) * 16384; o < bytes; o += 32 * 16384)                                       \
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(nxt + o),                                 \
                     "r"(unsigned(bytes - o < 16384 ? bytes - o : 16384))                                         \
                     : "memory");                                                                                 \
    }                                                                                                             \
  } while (0)
#endif

#include "backend/cuda/gemv_whole_k.cu"

using namespace mmfp4::cuda;

int main(int argc, char** argv) {
  const int M = argc > 1 ? std::atoi(argv[1]) : 1;
  CHECK(cudaSetDevice(0));
  cudaDeviceProp pr;
  CHECK(cudaGetDeviceProperties(&pr, 0));
  const int n = 20480, k = 2048, n_tiles = n / 16, k_chunks = k / 64, groups = k / 128;
  const long long cbytes = (long long)n * k / 2, sbytes = (long long)n_tiles * groups * 32;
  unsigned char *codes_raw, *scales;
  const size_t stride = size_t(1) << kCopyShift, region = stride * kCopies;
  if (cbytes > (long long)stride) return std::printf("a copy is larger than %zu bytes\n", stride), 1;
  CHECK(cudaMalloc(&codes_raw, 2 * region));  // room for copy 0 on a region boundary
  unsigned char* codes = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(codes_raw) + region - 1) &
                                                          ~uintptr_t(region - 1));
  CHECK(cudaMalloc(&scales, size_t(sbytes * kCopies)));
  {
    std::vector<uint32_t> h(size_t(cbytes / 4));
    for (auto& v : h) v = uint32_t(rand()) * 2654435761u ^ uint32_t(rand());
    for (int c = 0; c < kCopies; ++c)
      CHECK(cudaMemcpy(codes + c * stride, h.data(), size_t(cbytes), cudaMemcpyHostToDevice));
    std::vector<uint32_t> hs(size_t(sbytes / 4), 0x38003800u);  // f16 0.5 pairs
    for (int c = 0; c < kCopies; ++c) CHECK(cudaMemcpy(scales + c * sbytes, hs.data(), size_t(sbytes), cudaMemcpyHostToDevice));
  }
  float *x, *y;
  CHECK(cudaMalloc(&x, size_t(M) * k * 4));
  CHECK(cudaMalloc(&y, size_t(M) * n * 4));
  {
    std::vector<float> hx(size_t(M) * k);
    for (auto& v : hx) v = float(rand() % 2001 - 1000) / 1000.0f;
    CHECK(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  }
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  pdl_flag() = true;
  // 5..16 rows: the activations prepared by their own launch before each GEMV (PrepArgs::raw), as the backend does.
  const WholeKProbeArgs args = whole_k_probe_args(n, k, M, pr.multiProcessorCount, x, y);
  const GemmArgs& a = args.a;
  const bool staged = args.staged;
  auto launch = [&](int i) {
    GemmArgs b = a;
    b.w.data = codes + (i % kCopies) * stride;
    b.w.scales = reinterpret_cast<const uint32_t*>(scales + (i % kCopies) * sbytes);
    if (!staged) launch_prepare_activations(args.prep, st);
    launch_gemm_whole_k(b, st);
  };
  for (int i = 0; i < 32; ++i) launch(i);
  CHECK(cudaStreamSynchronize(st));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  CHECK(cudaEventRecord(e0, st));
  for (int i = 0; i < 160; ++i) launch(i);
  CHECK(cudaEventRecord(e1, st));
  CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, e0, e1));
  const int T = a.whole_k_tiles, blocks = (n_tiles + T - 1) / T;
  std::printf("20480x2048 M=%d: %d tiles per block, %d blocks; %.2f us per launch (%.3f TB/s of codes + scales)\n", M, T,
              blocks, 1000.0 * ms / 160, (cbytes + sbytes) / (1e-3 * ms / 160) / 1e12);
  // Traced: 32 more launches; the last 16 (copies 0..15 in order) remain.
  for (int i = 0; i < 32; ++i) launch(i);
  CHECK(cudaStreamSynchronize(st));
  std::vector<unsigned long long> tr(size_t(kCopies) * kMaxBlocks * kPoints);
  CHECK(cudaMemcpyFromSymbol(tr.data(), g_trace, tr.size() * 8));
  std::vector<long long> clk(tr.size());
  CHECK(cudaMemcpyFromSymbol(clk.data(), g_clock, clk.size() * 8));
  unsigned long long t0 = ~0ull;
  for (int b = 0; b < blocks; ++b) t0 = std::min(t0, tr[(size_t(4) * kMaxBlocks + b) * kPoints + 0]);
  const int nq = (k_chunks + 3) / 4;
  std::vector<int> pts = {0, 1, 2};
  for (int q = 0; q < nq; ++q) pts.push_back(3 + q);
  pts.push_back(14);
  for (int c = 4; c < 10; ++c) {
    std::printf("launch %d:", c);
    for (int pt : pts) {
      std::vector<double> v;
      for (int b = 0; b < blocks; ++b) v.push_back((double(tr[(size_t(c) * kMaxBlocks + b) * kPoints + pt]) - double(t0)) * 1e-3);
      std::sort(v.begin(), v.end());
      std::printf("  [%d] %.1f/%.1f/%.1f", pt, v.front(), v[v.size() / 2], v.back());
    }
    // Warp 0's stages after the first (stages 2, 4, .. with two warps per tile): SM cycles and the SM clock.
    std::vector<double> cyc, ghz;
    for (int b = 0; b < blocks; ++b) {
      const size_t i = (size_t(c) * kMaxBlocks + b) * kPoints;
      const double dc = double(clk[i + 14] - clk[i + 3]), dt = double(tr[i + 14] - tr[i + 3]);
      cyc.push_back(dc);
      ghz.push_back(dc / dt);
    }
    std::sort(cyc.begin(), cyc.end());
    std::sort(ghz.begin(), ghz.end());
    std::printf("   loop [3]..[14]: %.0f cycles (median), clock %.2f GHz\n", cyc[cyc.size() / 2], ghz[ghz.size() / 2]);
  }
  return 0;
}
