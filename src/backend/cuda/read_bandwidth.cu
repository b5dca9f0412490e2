// The device's streaming read bandwidth, measured the way the weight-streaming GEMVs use memory (16-byte loads
// that bypass L1, every SM busy, a buffer far larger than the 50 MB L2), so that benchmarks can state decode speed
// against a ceiling measured in the same run. Benchmarks only: never on the inference path.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

#include <algorithm>
#include <chrono>

namespace mmfp4::cuda {

namespace {

// Each thread XORs its grid-strided 16-byte words; one word per block is written so the loads stay live.
__global__ void read_kernel(const uint4* p, int64_t n, uint4* sink) {
  pdl_enter();
  uint4 a = make_uint4(0, 0, 0, 0);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcg(p + i);
    a.x ^= v.x;
    a.y ^= v.y;
    a.z ^= v.z;
    a.w ^= v.w;
  }
  if ((a.x ^ a.y ^ a.z ^ a.w) == 0x9e3779b9u) sink[blockIdx.x] = a;  // almost never: keeps the reads
}

}  // namespace

double measure_read_bandwidth(const void* buf, size_t bytes, void* sink, int sms, int reps, cudaStream_t s) {
  const int64_t n = int64_t(bytes / 16);
  const int blocks = std::max(1, sms) * 8;
  double best = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first pass warms up (clocks, TLB) and is not counted
    MMFP4_CUDA_CHECK(cudaStreamSynchronize(s), "read bandwidth: an earlier op failed");
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; ++i)  // 4 passes per timing: the host's launch and sync cost is a small share
      MMFP4_LAUNCH(blocks, 512, 0, s, read_kernel)(static_cast<const uint4*>(buf), n, static_cast<uint4*>(sink));
    MMFP4_CUDA_CHECK(cudaGetLastError(), "read bandwidth: launch of ", blocks, " blocks");
    MMFP4_CUDA_CHECK(cudaStreamSynchronize(s), "read bandwidth: ", bytes, " bytes");
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::max(best, 4.0 * double(n) * 16 / dt / 1e9);
  }
  return best;
}

}  // namespace mmfp4::cuda
