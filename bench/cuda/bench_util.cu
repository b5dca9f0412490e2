// Device helpers of the CUDA benchmarks (bench_util.h).
#include "bench_util.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace mmfp4::bench {

namespace {

// mode (ReadMode): WaitFirst waits for the previous launch in griddepcontrol before loading (after being scheduled
// while it ran); Early lets the next launch be scheduled at once, loads, and waits last.
__global__ void read_kernel(const uint4* p, int64_t n, uint32_t* sink, ReadMode mode) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (mode == ReadMode::WaitFirst) asm volatile("griddepcontrol.wait;\n" ::: "memory");
  if (mode != ReadMode::Plain) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  uint32_t acc = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p + i));
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (mode == ReadMode::Early) asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  if (acc == 0x9e3779b9u) *sink = acc;  // keeps the loads alive
}

__global__ void fill_kernel(uint32_t* p, int64_t n, uint32_t seed, uint32_t mask, uint32_t add) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t x = uint32_t(i) * 2654435761u ^ seed;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    p[i] = (x & mask) + add;
  }
}

}  // namespace

cudaError_t launch_read(const void* p, int64_t bytes, uint32_t* sink, int sms, cudaStream_t s, ReadMode mode) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(sms * 8));
  cfg.blockDim = dim3(512);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = mode == ReadMode::Plain ? 0 : 1;
  return cudaLaunchKernelEx(&cfg, read_kernel, static_cast<const uint4*>(p), bytes / 16, sink, mode);
}

void launch_fill(void* p, int64_t words, uint32_t seed, uint32_t mask, uint32_t add, cudaStream_t s) {
  fill_kernel<<<1024, 256, 0, s>>>(static_cast<uint32_t*>(p), words, seed, mask, add);
}

}  // namespace mmfp4::bench
