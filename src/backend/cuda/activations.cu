// Activations for the tensor-core linear kernels: float32 rows -> 16-bit mma B fragments in the order the weight
// tiles use (kernels.h, PrepArgs; repack.h). Converting once per linear call, instead of in every warp that reads
// the activations, keeps the GEMM's inner loop to one 16-byte load per 8 tokens x 32 columns. Rows can be gathered
// through a map (MoE: tokens sorted by expert); missing rows and columns past k are zeros.
#include "backend/cuda/activations.cuh"
#include "backend/cuda/check.h"

namespace mmfp4::cuda {

namespace {

__global__ void prepare_kernel(PrepArgs p, bool vec_ok) {
  pdl_enter();
  const int64_t wid = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp, g = lane >> 2, c = lane & 3;
  const int64_t n_items = int64_t(p.rows_pad / 8) * p.kb32;
  if (wid >= n_items) return;
  const int tt = int(wid / p.kb32), kb = int(wid % p.kb32);
  const int row = tt * 8 + g, k0 = kb * 32 + 8 * c;
  float v[8];
  prep_load8(p, prep_source_row(p, row), k0, vec_ok, v);
  if (p.raw)
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] *= kRawActScale;
  uint32_t hi[4], lo[4];
  prep_split8(v, p.f16, hi, lo);
  if (p.wg_order) {  // register i of this lane -> word 32 i + lane of the item (PrepArgs::wg_order)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      static_cast<uint32_t*>(p.xb)[wid * 128 + 32 * i + lane] = hi[i];
      if (p.xb_lo) static_cast<uint32_t*>(p.xb_lo)[wid * 128 + 32 * i + lane] = lo[i];
    }
    return;
  }
  static_cast<uint4*>(p.xb)[wid * 32 + lane] = make_uint4(hi[0], hi[1], hi[2], hi[3]);
  if (p.xb_lo) static_cast<uint4*>(p.xb_lo)[wid * 32 + lane] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
}

}  // namespace

void launch_prepare_activations(const PrepArgs& p, cudaStream_t s) {
  const int64_t warps = int64_t(p.rows_pad / 8) * p.kb32;
  if (warps == 0) return;
  const bool vec_ok = (p.x_stride % 4) == 0 && (reinterpret_cast<uintptr_t>(p.x) % 16) == 0;
  const int threads = 256;
  const int64_t blocks = (warps * kWarp + threads - 1) / threads;
  MMFP4_LAUNCH(unsigned(blocks), threads, 0, s, prepare_kernel)(p, vec_ok);
  MMFP4_CUDA_LAUNCHED("prepare activations [", p.m, ", ", p.k_valid, "] -> ", p.rows_pad, " x ", p.kb32 * 32,
                      p.f16 ? " f16" : " bf16");
}

}  // namespace mmfp4::cuda
