// Probe (device measurement, not part of the build): the timeline of the engine's whole-K launch (gemv_whole_k.cu,
// included here with its trace hooks defined) on GLM's dense MLP (20480x2048) at M rows, launched back to back with
// PDL on rotating weight copies as bench_cuda_linear does. Thread 0 of each block stamps %globaltimer at: 0 start,
// 1 after the wait for the previous launch, 2 after staging the activations, 3 + q when stage q's codes have landed
// (consumer warp 0), 14 after its last stage; 5..16 rows: each launch after its own prepare launch, as in the
// backend. Printed per launch: min / median / max over blocks of each stamp in microseconds from the first traced
// launch's earliest start, and the time per launch.
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc -o /tmp/probe_wkt \
//     scripts/device/probe_whole_k_trace.cu build-cuda/src/backend/cuda/libmmfp4_cuda.a build-cuda/src/core/libmmfp4_core.a
//   MMFP4_CUDA_WHOLEK_SLOTS=5 /tmp/probe_wkt [M]     MMFP4_PROBE_PREFETCH=2 /tmp/probe_wkt 16
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe_util.cuh"

constexpr int kCopies = 16, kPoints = 16, kMaxBlocks = 160;
__device__ unsigned long long g_trace[kCopies * kMaxBlocks * kPoints];
__device__ const unsigned char* g_base;
__device__ long long g_copy_bytes;
// The weight copy (0..kCopies-1) a launch reads.
__device__ long long copy_of(const void* w) { return (static_cast<const unsigned char*>(w) - g_base) / g_copy_bytes; }

#define MMFP4_WHOLEK_TRACE(pt)                                                                                    \
  do {                                                                                                            \
    if (threadIdx.x == 0 && (pt) < kPoints) {                                                                     \
      const long long c = copy_of(p.w.data);                                                                      \
      g_trace[(c * kMaxBlocks + blockIdx.x) * kPoints + (pt)] = gtimer();                                         \
    }                                                                                                             \
  } while (0)

// MMFP4_PROBE_PREFETCH=1 or 2: the producer of each block asks L2 for its tiles' codes of the NEXT launch's weight
// copy (cp.async.bulk.prefetch.L2) after staging (1) or after its last copy (2): how long a launch takes when its
// codes come from L2 (what a plan that prefetches the next layer's weights during this one could give).
__device__ int g_prefetch_at;
#define MMFP4_WHOLEK_PRODUCER(point)                                                                              \
  do {                                                                                                            \
    if ((point) == g_prefetch_at) {                                                                               \
      const long long c = copy_of(p.w.data);                                                                      \
      const unsigned char* nxt = g_base + ((c + 1) % kCopies) * g_copy_bytes + int64_t(t0) * p.w.k_chunks * 512; \
      const long long bytes = int64_t(tiles) * p.w.k_chunks * 512;                                                \
      for (long long o = int64_t(lane) * 16384; o < bytes; o += 32 * 16384)                                       \
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(nxt + o),                                 \
                     "r"(unsigned(bytes - o < 16384 ? bytes - o : 16384))                                         \
                     : "memory");                                                                                 \
    }                                                                                                             \
  } while (0)

#include "backend/cuda/gemv_whole_k.cu"

using namespace mmfp4::cuda;

int main(int argc, char** argv) {
  const int M = argc > 1 ? std::atoi(argv[1]) : 1;
  CHECK(cudaSetDevice(0));
  cudaDeviceProp pr;
  CHECK(cudaGetDeviceProperties(&pr, 0));
  const int n = 20480, k = 2048, n_tiles = n / 16, k_chunks = k / 64, groups = k / 128;
  const long long cbytes = (long long)n * k / 2, sbytes = (long long)n_tiles * groups * 32;
  unsigned char *codes, *scales;
  CHECK(cudaMalloc(&codes, size_t(cbytes * kCopies)));
  CHECK(cudaMalloc(&scales, size_t(sbytes * kCopies)));
  {
    std::vector<uint32_t> h(size_t(cbytes / 4));
    for (auto& v : h) v = uint32_t(rand()) * 2654435761u ^ uint32_t(rand());
    for (int c = 0; c < kCopies; ++c) CHECK(cudaMemcpy(codes + c * cbytes, h.data(), size_t(cbytes), cudaMemcpyHostToDevice));
    std::vector<uint32_t> hs(size_t(sbytes / 4), 0x38003800u);  // f16 0.5 pairs
    for (int c = 0; c < kCopies; ++c) CHECK(cudaMemcpy(scales + c * sbytes, hs.data(), size_t(sbytes), cudaMemcpyHostToDevice));
  }
  CHECK(cudaMemcpyToSymbol(g_base, &codes, sizeof(codes)));
  CHECK(cudaMemcpyToSymbol(g_copy_bytes, &cbytes, sizeof(cbytes)));
  {
    const int at = std::getenv("MMFP4_PROBE_PREFETCH") ? std::atoi(std::getenv("MMFP4_PROBE_PREFETCH")) : 0;
    CHECK(cudaMemcpyToSymbol(g_prefetch_at, &at, sizeof(at)));
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
  GemmArgs a;
  a.w.kind = WKind::Fp4;
  a.w.n = n;
  a.w.k = k;
  a.w.n_tiles = n_tiles;
  a.w.k_chunks = k_chunks;
  a.w.groups = groups;
  a.w.group_size = 128;
  a.w.layout = 2;
  a.m = M;
  a.nt = M > 8 ? 2 : 1;
  a.grid_tiles = 1;
  a.y = y;
  a.y_stride = n;
  a.gshift = 2;
  a.kb32 = 2 * k_chunks;
  a.whole_k_tiles = gemm_whole_k_tiles(a.w, pr.multiProcessorCount);
  // 5..16 rows: the activations prepared by their own launch before each GEMV (PrepArgs::raw), as the backend does.
  const bool staged = M <= 4;
  void *xb = nullptr, *xb_lo = nullptr;
  PrepArgs pp;
  if (!staged) {
    CHECK(cudaMalloc(&xb, size_t(8 * a.nt) * k * 2));
    CHECK(cudaMalloc(&xb_lo, size_t(8 * a.nt) * k * 2));
    pp.x = x;
    pp.x_stride = k;
    pp.m = M;
    pp.k_valid = k;
    pp.rows_pad = 8 * a.nt;
    pp.kb32 = 2 * k_chunks;
    pp.xb = xb;
    pp.xb_lo = xb_lo;
    pp.raw = true;
  }
  a.stage = staged;
  a.stage_rows = M;
  a.stage_stride = k_chunks * 64 + 32;
  a.stage_lo = stage_lo_offset(M, a.stage_stride);
  a.stage_vec = true;
  a.prep.x = x;
  a.prep.x_stride = k;
  a.prep.m = M;
  a.prep.k_valid = k;
  a.prep.kb32 = 2 * k_chunks;
  a.prep.xb = y;     // (flags only: the staged launch reads x)
  a.prep.xb_lo = y;
  a.xb = staged ? static_cast<void*>(y) : xb;
  a.xb_lo = staged ? static_cast<void*>(y) : xb_lo;
  auto launch = [&](int i) {
    GemmArgs b = a;
    b.w.data = codes + (i % kCopies) * cbytes;
    b.w.scales = reinterpret_cast<const uint32_t*>(scales + (i % kCopies) * sbytes);
    if (!staged) launch_prepare_activations(pp, st);
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
    std::printf("\n");
  }
  return 0;
}
