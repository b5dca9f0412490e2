// The machine's memory bandwidth, measured the way the weight-streaming kernels use it (every thread of the pool
// reads its own contiguous part of a buffer much larger than the last-level cache), so that benchmarks can state
// their results as a fraction of a ceiling measured in the same run.
#pragma once

#include <cstddef>

#include "core/thread_pool.h"

namespace mmfp4 {

struct MemBandwidth {
  double read_gbs = 0;  // bytes read / s (best of the repetitions)
  double copy_gbs = 0;  // (bytes read + bytes written) / s of a copy
  size_t bytes = 0;     // buffer size used
  int threads = 0;
};

// Reads (and copies) a buffer of `bytes` on `threads` threads of `pool` (0: all), best of `reps`.
MemBandwidth measure_memory_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int reps = 5,
                                      int threads = 0);

// One read pass over p[0, n) (p 64-byte aligned; a tail under 64 floats per task is skipped), in contiguous chunks
// handed to the pool's threads like the GEMV driver's; returns a value depending on every float (so the reads cannot be optimised away).
float read_pass(ThreadPool& pool, const float* p, size_t n);

}  // namespace mmfp4
