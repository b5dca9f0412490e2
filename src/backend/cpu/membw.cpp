#include "backend/cpu/membw.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace mmfp4 {

namespace {

// Sum of n floats with 8 independent accumulators (one chain is latency bound far below the memory rate).
float read_sum(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    a4 = _mm256_add_ps(a4, _mm256_load_ps(p + i + 32));
    a5 = _mm256_add_ps(a5, _mm256_load_ps(p + i + 40));
    a6 = _mm256_add_ps(a6, _mm256_load_ps(p + i + 48));
    a7 = _mm256_add_ps(a7, _mm256_load_ps(p + i + 56));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  alignas(32) float t[8];
  _mm256_store_ps(t, s);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

float read_pass(ThreadPool& pool, const float* p, size_t n) {
  // Dynamic tasks, two per thread, as the GEMV driver splits its work: a thread the OS delays costs its share only.
  const size_t T = std::min<size_t>(64, size_t(pool.size()) * 2);
  float sums[64] = {};
  pool.run(int64_t(T), [&](int64_t t, int) {
    const size_t lo = n * size_t(t) / T / 64 * 64, hi = n * size_t(t + 1) / T / 64 * 64;
    sums[t] = read_sum(p + lo, hi - lo);
  });
  float s = 0;
  for (size_t t = 0; t < T; ++t) s += sums[t];
  return s;
}

MemBandwidth measure_memory_bandwidth(ThreadPool& pool, size_t bytes, int reps, int threads) {
  MemBandwidth r;
  r.threads = threads > 0 ? std::min(threads, pool.size()) : pool.size();
  const size_t n = bytes / sizeof(float) / 128 * 128;  // whole 64-float blocks per thread share
  r.bytes = n * sizeof(float);
  std::unique_ptr<float, void (*)(void*)> a(static_cast<float*>(std::aligned_alloc(64, n * 4)), std::free);
  std::unique_ptr<float, void (*)(void*)> b(static_cast<float*>(std::aligned_alloc(64, n * 4)), std::free);
  if (!a || !b) fail("memory bandwidth test: cannot allocate 2 x ", n * 4, " bytes");
  const int T = r.threads;
  // First touch by the threads that will read (pages land near them on NUMA machines).
  pool.run_per_thread([&](int64_t t, int) {
    if (t >= T) return;
    const size_t lo = n * size_t(t) / size_t(T) / 64 * 64, hi = n * size_t(t + 1) / size_t(T) / 64 * 64;
    std::memset(a.get() + lo, 1, (hi - lo) * 4);
    std::memset(b.get() + lo, 0, (hi - lo) * 4);
  });
  volatile float sink = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    float sums[64] = {};
    pool.run_per_thread([&](int64_t t, int) {
    if (t >= T) return;
      const size_t lo = n * size_t(t) / size_t(T) / 64 * 64, hi = n * size_t(t + 1) / size_t(T) / 64 * 64;
      sums[t % 64] = read_sum(a.get() + lo, hi - lo);
    });
    r.read_gbs = std::max(r.read_gbs, double(n * 4) / seconds_since(t0) / 1e9);
    sink = sink + sums[0];
    t0 = std::chrono::steady_clock::now();
    pool.run_per_thread([&](int64_t t, int) {
    if (t >= T) return;
      const size_t lo = n * size_t(t) / size_t(T) / 64 * 64, hi = n * size_t(t + 1) / size_t(T) / 64 * 64;
      std::memcpy(b.get() + lo, a.get() + lo, (hi - lo) * 4);
    });
    r.copy_gbs = std::max(r.copy_gbs, 2.0 * double(n * 4) / seconds_since(t0) / 1e9);
  }
  return r;
}

}  // namespace mmfp4
