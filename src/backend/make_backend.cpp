#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

#ifdef MMFP4_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace mmfp4 {

bool cuda_available() {
#ifdef MMFP4_WITH_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (device == "cpu") return std::make_unique<CpuBackend>(threads);
  if (device == "cuda" || device == "auto") {
#ifdef MMFP4_WITH_CUDA
    if (cuda_available()) return make_cuda_backend(0);
    if (device == "cuda") fail("--device cuda: no CUDA GPU is visible (", cuda_status_message(), ")");
#else
    if (device == "cuda") fail("--device cuda: this build of mmfp4 has no CUDA backend (nvcc was not found at build time)");
#endif
    return std::make_unique<CpuBackend>(threads);
  }
  fail("unknown device '", device, "' (expected cpu, cuda or auto)");
}

}  // namespace mmfp4
