// Device helpers of the CUDA benchmarks (bench_util.cu): the streaming-read ceiling measured in the same run, and
// random fills (benchmarks never time zeros: they hide wrong indexing and can run faster than real data).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mmfp4::bench {

// How a read launch relates to the launch before it on the stream:
//   Plain      an ordinary launch;
//   WaitFirst  with PDL (programmatic stream serialization, sm_90), waiting for the previous launch before any load,
//              as a kernel that needs its input first;
//   Early      with PDL, its loads issued first and the wait last, as a kernel requests weights that do not depend
//              on the previous launch (gemv_whole_k.cu).
enum class ReadMode { Plain, WaitFirst, Early };

// Streams `bytes` (a multiple of 16) from p past L1, sms x 8 blocks of 512 threads. Returns the launch's error.
cudaError_t launch_read(const void* p, int64_t bytes, uint32_t* sink, int sms, cudaStream_t s,
                        ReadMode mode = ReadMode::Plain);
// Words of random bits (mask/add pick the range: e.g. bf16 pairs of moderate magnitude).
void launch_fill(void* p, int64_t words, uint32_t seed, uint32_t mask, uint32_t add, cudaStream_t s);

}  // namespace mmfp4::bench
