// cuBLAS through dlopen (cublas_lib.h). Only the entry points the prefill path uses are looked up.
#include "backend/cuda/cublas_lib.h"

#include <dlfcn.h>

#include <type_traits>

#include "core/error.h"

#ifndef MMFP4_CUDA_SIM_BUILD
#include <cublas_api.h>
#endif

namespace mmfp4::cuda {

#ifdef MMFP4_CUDA_SIM_BUILD
struct Cublas::Api {};
std::unique_ptr<Cublas> Cublas::open(cudaStream_t, void*, size_t, std::string* why) {
  *why = "the CUDA simulator build has no cuBLAS";
  return nullptr;
}
Cublas::~Cublas() = default;
void Cublas::gemm(const BlasGemm&, const char* what) { fail(what, ": no cuBLAS in the simulator build"); }
#else
struct Cublas::Api {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetWorkspace_v2) set_workspace = nullptr;
  decltype(&cublasSetMathMode) set_math = nullptr;
  // Written out: the header also declares C++ overloads of these two, so decltype cannot name the C entry point.
  cublasStatus_t (*gemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                         const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                         cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  cublasStatus_t (*gemm_batched)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                 const void*, cudaDataType, int, long long, const void*, cudaDataType, int, long long,
                                 const void*, void*, cudaDataType, int, long long, int, cublasComputeType_t,
                                 cublasGemmAlgo_t) = nullptr;
};

std::unique_ptr<Cublas> Cublas::open(cudaStream_t stream, void* workspace, size_t workspace_bytes, std::string* why) {
  std::unique_ptr<Cublas> c(new Cublas());
  for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) {
    c->lib_ = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (c->lib_) {
      c->lib_name_ = name;
      break;
    }
  }
  if (!c->lib_) {
    *why = "no libcublas.so.13/.12 on the library path";
    return nullptr;
  }
  c->api_ = std::make_unique<Api>();
  Api& a = *c->api_;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(c->lib_, name));
    return fn != nullptr;
  };
  if (!sym(a.create, "cublasCreate_v2") || !sym(a.destroy, "cublasDestroy_v2") ||
      !sym(a.set_stream, "cublasSetStream_v2") || !sym(a.set_workspace, "cublasSetWorkspace_v2") ||
      !sym(a.set_math, "cublasSetMathMode") || !sym(a.gemm, "cublasGemmEx") ||
      !sym(a.gemm_batched, "cublasGemmStridedBatchedEx")) {
    *why = cat(c->lib_name_, " lacks an entry point the backend uses");
    return nullptr;
  }
  cublasHandle_t h = nullptr;
  if (a.create(&h) != CUBLAS_STATUS_SUCCESS) {
    *why = cat(c->lib_name_, ": cublasCreate failed");
    return nullptr;
  }
  c->handle_ = h;
  if (a.set_stream(h, stream) != CUBLAS_STATUS_SUCCESS ||
      a.set_workspace(h, workspace, workspace_bytes) != CUBLAS_STATUS_SUCCESS ||
      a.set_math(h, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) {
    *why = cat(c->lib_name_, ": setting the stream, workspace or math mode failed");
    return nullptr;
  }
  return c;
}

Cublas::~Cublas() {
  if (handle_ && api_) api_->destroy(static_cast<cublasHandle_t>(handle_));
  // The library stays loaded (other handles of the process may use it; unloading buys nothing).
}

void Cublas::gemm(const BlasGemm& g, const char* what) {
  ++calls_;
  const float alpha = 1.0f;
  auto h = static_cast<cublasHandle_t>(handle_);
  const cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t s;
  if (g.batch == 1)
    s = api_->gemm(h, ta, CUBLAS_OP_N, g.m, g.n, g.k, &alpha, g.a, cudaDataType(g.a_type), int(g.lda), g.b,
                   cudaDataType(g.b_type), int(g.ldb), &g.beta, g.c, cudaDataType(g.c_type), int(g.ldc),
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  else
    s = api_->gemm_batched(h, ta, CUBLAS_OP_N, g.m, g.n, g.k, &alpha, g.a, cudaDataType(g.a_type), int(g.lda),
                           g.stride_a, g.b, cudaDataType(g.b_type), int(g.ldb), g.stride_b, &g.beta, g.c,
                           cudaDataType(g.c_type), int(g.ldc), g.stride_c, g.batch, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT);
  if (s != CUBLAS_STATUS_SUCCESS)
    fail("cuBLAS error ", int(s), " in ", what, " (m ", g.m, ", n ", g.n, ", k ", g.k, ", batch ", g.batch, ")");
}
#endif

}  // namespace mmfp4::cuda
