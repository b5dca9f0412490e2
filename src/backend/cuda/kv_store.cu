// Writes the batch's K/V (GQA) or latent + rope key (MLA) into the paged bf16 cache at each token's slot, read from
// device memory. A negative slot marks a padding token of a graph bucket: nothing is stored for it.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

namespace {

template <typename T>
__global__ void store_rows_kernel(T* cache, int64_t width, const int32_t* slots, int n_tokens, const float* a,
                                  int64_t as, int a_cols, const float* b, int64_t bs, int b_cols) {
  pdl_enter();
  const int t = blockIdx.x;
  const int32_t slot = slots[t];
  if (slot < 0) return;
  T* dst = cache + int64_t(slot) * width;
  for (int c = threadIdx.x; c < a_cols + b_cols; c += blockDim.x) {
    const float v = c < a_cols ? a[int64_t(t) * as + c] : b[int64_t(t) * bs + (c - a_cols)];
    if constexpr (sizeof(T) == 4)
      dst[c] = v;
    else
      dst[c] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

}  // namespace

void launch_store_rows(void* cache, bool f32, int64_t width, const int32_t* slots, int n_tokens, const float* a,
                       int64_t as, int a_cols, const float* b, int64_t bs, int b_cols, cudaStream_t s) {
  if (n_tokens == 0) return;
  if (f32)
    MMFP4_LAUNCH(n_tokens, 128, 0, s, store_rows_kernel<float>)(static_cast<float*>(cache), width, slots, n_tokens, a, as,
                                                      a_cols, b, bs, b_cols);
  else
    MMFP4_LAUNCH(n_tokens, 128, 0, s, store_rows_kernel<uint16_t>)(static_cast<uint16_t*>(cache), width, slots, n_tokens, a,
                                                         as, a_cols, b, bs, b_cols);
  MMFP4_CUDA_LAUNCHED("kv store ", n_tokens, " tokens x (", a_cols, " + ", b_cols, ") into width ", width);
}

}  // namespace mmfp4::cuda
