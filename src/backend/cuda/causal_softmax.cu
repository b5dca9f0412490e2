// The softmax of attention computed as two cuBLAS products (prefill, cuda_backend_blas.cpp): S = Q K^T in float32,
// then P = softmax(scale * S) over each query's causal keys, written as bf16 for the P V product.
#include "backend/cuda/common.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // a warp per row

// Row r is query r / heads of the chunk (position pos0 + r / heads): keys j <= that position count, later ones get
// P = 0. Max and sum in float32 over the row (three passes over S, which stays in L1/L2: a row is <= 32 KB).
__global__ void causal_softmax_kernel(const float* S, int64_t ld_s, int rows, int heads, int pos0, int n_keys,
                                      float scale, uint16_t* P, int64_t ld_p) {
  pdl_enter();
  const int r = int(blockIdx.x) * kRowsPerBlock + int(threadIdx.x) / kWarp, lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  const int last = min(n_keys - 1, pos0 + r / heads);
  const float* s = S + int64_t(r) * ld_s;
  float m = -INFINITY;
  for (int j = lane; j <= last; j += kWarp) m = fmaxf(m, s[j]);
  m = warp_max(m) * scale;
  float sum = 0.0f;
  for (int j = lane; j <= last; j += kWarp) sum += expf(fmaf(s[j], scale, -m));
  const float inv = 1.0f / warp_sum(sum);
  uint16_t* p = P + int64_t(r) * ld_p;
  for (int j = 2 * lane; j < n_keys; j += 2 * kWarp) {
    const float v0 = j <= last ? expf(fmaf(s[j], scale, -m)) * inv : 0.0f;
    const float v1 = j + 1 <= last ? expf(fmaf(s[j + 1], scale, -m)) * inv : 0.0f;
    const uint32_t w = pack_bf16x2(v0, v1);
    p[j] = uint16_t(w & 0xFFFF);
    if (j + 1 < n_keys) p[j + 1] = uint16_t(w >> 16);
  }
}

}  // namespace

void launch_causal_softmax_bf16(const float* S, int64_t ld_s, int rows, int heads, int pos0, int n_keys, float scale,
                                uint16_t* P, int64_t ld_p, cudaStream_t s) {
  if (rows <= 0) return;
  if (heads <= 0 || n_keys <= 0 || pos0 < 0) fail("causal_softmax: heads ", heads, ", keys ", n_keys, ", pos0 ", pos0);
  MMFP4_LAUNCH(dim3(unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock)), dim3(kRowsPerBlock * kWarp), 0, s,
               causal_softmax_kernel)(S, ld_s, rows, heads, pos0, n_keys, scale, P, ld_p);
  MMFP4_CUDA_LAUNCHED("causal_softmax ", rows, " rows x ", n_keys, " keys");
}

}  // namespace mmfp4::cuda
