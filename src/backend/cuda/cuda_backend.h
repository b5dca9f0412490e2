// The CUDA backend's entry points, callable from plain C++ (no CUDA headers): make_backend() uses these when the
// build has the CUDA backend (MMFP4_WITH_CUDA). The backend itself is declared in cuda_backend_impl.h.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace mmfp4 {

// Number of usable CUDA devices (0 when there is no driver or no GPU; never throws).
int cuda_device_count();
// Why cuda_device_count() is 0, or a one-line description of device 0.
std::string cuda_status_message();
// The backend on `device`; throws mmfp4::Error if it cannot be created.
std::unique_ptr<Backend> make_cuda_backend(int device);

}  // namespace mmfp4
