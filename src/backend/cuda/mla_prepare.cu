// MLA's steps between kv_a and the attention in one launch (Backend::mla_prepare; decode runs ~15 small kernels per
// layer, so each launch saved is ~4 us): a block per token runs mla_prepare_row (mla_prepare.cuh). Hadamard-rotated
// latents take the ops one by one (cuda_backend.cpp); at decode the rows may instead run as extra blocks of the next
// absorb_q launch (mla_absorb.cu, FastPaths::mla_fuse).
#include "backend/cuda/check.h"
#include "backend/cuda/mla_prepare.cuh"

namespace mmfp4::cuda {

namespace {

template <typename T>
__global__ void mla_prepare_kernel(MlaPrepArgs p) {
  pdl_enter();
  mla_prepare_row<T>(p, blockIdx.x);
}

}  // namespace

void launch_mla_prepare(const MlaPrepArgs& a, cudaStream_t s) {
  if (a.rows == 0) return;
  const int threads = mla_prepare_threads(a.R);  // rmsnorm.cu's choice: the same sum
  if (a.cache_f32)
    MMFP4_LAUNCH(a.rows, threads, 0, s, mla_prepare_kernel<float>)(a);
  else
    MMFP4_LAUNCH(a.rows, threads, 0, s, mla_prepare_kernel<uint16_t>)(a);
  MMFP4_CUDA_LAUNCHED("mla_prepare ", a.rows, " tokens, latent ", a.R, ", rope ", a.P, ", ", a.heads, " heads");
}

}  // namespace mmfp4::cuda
