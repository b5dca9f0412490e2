// Embedding lookup: out[t] = row tokens[t] of the table, in float32. Dense tables are converted; an MMFP4 table is
// dequantized row by row in shared memory and, if rotated, un-rotated (W = W' H: the same normalized transform,
// since H is symmetric and orthonormal), so no dequantized table ever exists in memory.
#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace mmfp4::cuda {

namespace {

__global__ void embed_dense_kernel(GemmWeight w, const int32_t* tokens, int vocab, float* out, int64_t os, int cols) {
  pdl_enter();
  const int t = blockIdx.x;
  const int id = min(max(tokens[t], 0), vocab - 1);  // ids are validated by the model; never read out of bounds
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[int64_t(t) * os + c] = weight_at(w, 0, id, c);
}

__global__ void embed_fp4_kernel(GemmWeight w, int had, const int32_t* tokens, int vocab, float* out, int64_t os,
                                 int cols) {
  pdl_enter();
  MMFP4_DYN_SMEM(float, row);
  const int t = blockIdx.x;
  const int id = min(max(tokens[t], 0), vocab - 1);
  for (int c = threadIdx.x; c < w.k; c += blockDim.x) row[c] = weight_at(w, 0, id, c);
  __syncthreads();
  if (had > 0) {
    for (int len = 1; len < had; len <<= 1) {
      for (int p = threadIdx.x; p < w.k / 2; p += blockDim.x) {
        const int blk = p / (had / 2), q = p % (had / 2);
        const int j = blk * had + (q / len) * 2 * len + (q % len);
        const float a = row[j], b = row[j + len];
        row[j] = a + b;
        row[j + len] = a - b;
      }
      __syncthreads();
    }
    const float s = 1.0f / sqrtf(float(had));
    for (int c = threadIdx.x; c < w.k; c += blockDim.x) row[c] *= s;
    __syncthreads();
  }
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[int64_t(t) * os + c] = row[c];
}

}  // namespace

void launch_embed(const GemmWeight& table, int had, const int32_t* tokens, int n_tokens, int vocab, float* out,
                  int64_t os, int cols, cudaStream_t s) {
  if (n_tokens == 0) return;
  if (table.kind == WKind::Fp4) {
    const size_t smem = size_t(table.k) * sizeof(float);
    if (smem > 48 * 1024) {
      if (smem > 200 * 1024) fail("embed: MMFP4 table rows of ", table.k, " columns are too wide for the CUDA kernel");
      MMFP4_CUDA_CHECK(cudaFuncSetAttribute(embed_fp4_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                       "embed: shared memory for rows of ", table.k);
    }
    MMFP4_LAUNCH(n_tokens, 256, smem, s, embed_fp4_kernel)(table, had, tokens, vocab, out, os, cols);
  } else {
    MMFP4_LAUNCH(n_tokens, 256, 0, s, embed_dense_kernel)(table, tokens, vocab, out, os, cols);
  }
  MMFP4_CUDA_LAUNCHED("embed ", n_tokens, " tokens from [", vocab, ", ", cols, "] kind ", int(table.kind));
}

}  // namespace mmfp4::cuda
