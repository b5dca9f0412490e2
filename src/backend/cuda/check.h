// Error checking for CUDA calls: every failure becomes an mmfp4::Error naming the call, the op and its shapes
// (never an abort: a bad request or an out-of-memory condition must reach the caller).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "core/error.h"

namespace mmfp4::cuda {

[[noreturn]] inline void raise_cuda(cudaError_t e, const char* call, const std::string& what) {
  fail("CUDA error in ", what.empty() ? std::string("?") : what, ": ", cudaGetErrorName(e), " (",
       cudaGetErrorString(e), ") from ", call);
}

}  // namespace mmfp4::cuda

// MMFP4_CUDA_CHECK(cudaMemcpy(...), "upload ", bytes, " bytes"): the trailing pieces describe the op and shapes.
#define MMFP4_CUDA_CHECK(call, ...)                                                         \
  do {                                                                                      \
    const cudaError_t mmfp4_e_ = (call);                                                    \
    if (mmfp4_e_ != cudaSuccess) ::mmfp4::cuda::raise_cuda(mmfp4_e_, #call, ::mmfp4::cat(__VA_ARGS__)); \
  } while (0)

namespace mmfp4::cuda {
// MMFP4_CUDA_PROFILE=1 (measurement only): every launch outside graph capture is followed by a device
// synchronisation, and its time (launch + run + sync, since the previous one) is added to a per-kernel total printed
// at exit: where a step's time goes, without a profiler on the machine.
bool profiling();
bool& capture_in_progress();  // set by the backend around graph capture (no synchronisation then)
void profile_launch(const std::string& what);
}  // namespace mmfp4::cuda

// After a kernel launch: a bad launch configuration shows here at once; a fault inside the kernel shows at the
// next synchronising call (sync/download), which names itself.
#define MMFP4_CUDA_LAUNCHED(...)                                                                            \
  do {                                                                                                      \
    MMFP4_CUDA_CHECK(cudaGetLastError(), __VA_ARGS__);                                                      \
    if (::mmfp4::cuda::profiling() && !::mmfp4::cuda::capture_in_progress())                                \
      ::mmfp4::cuda::profile_launch(::mmfp4::cat(__VA_ARGS__));                                             \
  } while (0)
