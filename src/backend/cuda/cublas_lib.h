// cuBLAS, opened at run time (dlopen) for the large products of prefill: the bf16 GEMMs of the prefill path
// (docs/cuda.md, "Prefill on cuBLAS"). Binaries do not link it: where no libcublas is found (or in the simulator
// build) the backend keeps its own kernels, and says so once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

namespace mmfp4::cuda {

// Element types of a product (a subset of cudaDataType: the values are cuBLAS's).
enum class BlasType : int { F32 = 0, F16 = 2, BF16 = 14 };

// One strided-batched product C_i = A_i^op B_i (+ beta C_i), column-major as cuBLAS sees it: A is m x k (op N) or
// k x m (op T), B is k x n (op N), C is m x n; float32 accumulation. batch 1 is a plain GEMM.
struct BlasGemm {
  bool trans_a = false;
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0, stride_a = 0;
  BlasType a_type = BlasType::BF16;
  const void* b = nullptr;
  int64_t ldb = 0, stride_b = 0;
  BlasType b_type = BlasType::BF16;
  void* c = nullptr;
  int64_t ldc = 0, stride_c = 0;
  BlasType c_type = BlasType::F32;
  float beta = 0.0f;
  int batch = 1;
};

class Cublas {
 public:
  // Opens the library and makes a handle bound to `stream` with `workspace` (so cuBLAS never allocates); null with
  // `why` set when it cannot (no library, simulator build, handle creation failed).
  static std::unique_ptr<Cublas> open(cudaStream_t stream, void* workspace, size_t workspace_bytes, std::string* why);
  ~Cublas();
  // Throws mmfp4::Error naming `what` and the shape on any cuBLAS error.
  void gemm(const BlasGemm& g, const char* what);
  std::string library() const { return lib_name_; }
  int64_t calls() const { return calls_; }  // products run (tests check that a path really used cuBLAS)

 private:
  Cublas() = default;
  struct Api;
  std::unique_ptr<Api> api_;
  void* lib_ = nullptr;
  void* handle_ = nullptr;
  std::string lib_name_;
  int64_t calls_ = 0;
};

}  // namespace mmfp4::cuda
