// Shared by the device probes in this folder (measurement scripts, not part of the build): a CUDA call checked at
// its line, and the %globaltimer clock (nanoseconds, the same on every SM) for timelines.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                                           \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

__device__ __forceinline__ unsigned long long gtimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// A device copy of h (never freed: the probes run once).
template <class T>
inline T* to_device(const std::vector<T>& h) {
  T* d = nullptr;
  CHECK(cudaMalloc(&d, h.size() * sizeof(T)));
  CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// Runs launch() twice (the first warms up) and times the second with events: its milliseconds, and the largest of the
// per-block clock64 counts it wrote to cyc[0 .. blocks) (the loop probes' "cycles").
template <class Launch>
inline void time_second_launch(Launch launch, const long long* cyc, int blocks, float* ms, long long* max_cycles) {
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  launch();
  CHECK(cudaEventRecord(e0));
  launch();
  CHECK(cudaEventRecord(e1));
  CHECK(cudaEventSynchronize(e1));
  CHECK(cudaGetLastError());
  CHECK(cudaEventElapsedTime(ms, e0, e1));
  std::vector<long long> cy(blocks);
  CHECK(cudaMemcpy(cy.data(), cyc, blocks * sizeof(long long), cudaMemcpyDeviceToHost));
  *max_cycles = 0;
  for (long long x : cy) *max_cycles = x > *max_cycles ? x : *max_cycles;
  CHECK(cudaEventDestroy(e0));
  CHECK(cudaEventDestroy(e1));
}
