// Shared by the whole-K probes in this folder (measurement scripts, not part of the build): the engine's GemmArgs for
// a plain MMFP4 linear [n, k] (layout 2, groups of 128 columns) at m rows, as the backend builds them for its whole-K
// launch (gemv_whole_k.cu): 1..4 rows staged in the block from x; 5..16 rows prepared by their own launch first
// (launch_prepare_activations(prep, stream), its buffers allocated here). The caller sets w.data and w.scales. Also the
// ring barriers of the probes' own whole-K kernels.
#pragma once

#include "backend/cuda/bulk_copy.cuh"
#include "backend/cuda/kernels.h"
#include "probe_util.cuh"

struct WholeKProbeArgs {
  mmfp4::cuda::GemmArgs a;
  mmfp4::cuda::PrepArgs prep;  // 5..16 rows
  bool staged = true;          // 1..4 rows
};

inline WholeKProbeArgs whole_k_probe_args(int n, int k, int m, int sms, const float* x, float* y) {
  using namespace mmfp4::cuda;
  WholeKProbeArgs r;
  GemmArgs& a = r.a;
  const int k_chunks = k / 64;
  a.w.kind = WKind::Fp4;
  a.w.n = n;
  a.w.k = k;
  a.w.n_tiles = n / 16;
  a.w.k_chunks = k_chunks;
  a.w.groups = k / 128;
  a.w.group_size = 128;
  a.w.layout = 2;
  a.m = m;
  a.nt = m > 8 ? 2 : 1;
  a.grid_tiles = 1;
  a.y = y;
  a.y_stride = n;
  a.gshift = 2;
  a.kb32 = 2 * k_chunks;
  a.whole_k_tiles = gemm_whole_k_tiles(a.w, sms);
  r.staged = m <= 4;
  void *xb = y, *xb_lo = y;  // (flags only where the launch stages x itself)
  if (!r.staged) {
    CHECK(cudaMalloc(&xb, size_t(8 * a.nt) * k * 2));
    CHECK(cudaMalloc(&xb_lo, size_t(8 * a.nt) * k * 2));
    PrepArgs& pp = r.prep;
    pp.x = x;
    pp.x_stride = k;
    pp.m = m;
    pp.k_valid = k;
    pp.rows_pad = 8 * a.nt;
    pp.kb32 = 2 * k_chunks;
    pp.xb = xb;
    pp.xb_lo = xb_lo;
    pp.raw = true;
  }
  a.stage = r.staged;
  a.stage_rows = m;
  a.stage_stride = k_chunks * 64 + 32;
  a.stage_lo = stage_lo_offset(m, a.stage_stride);
  a.stage_vec = true;
  a.prep.x = x;
  a.prep.x_stride = k;
  a.prep.m = m;
  a.prep.k_valid = k;
  a.prep.kb32 = 2 * k_chunks;
  a.prep.xb = y;
  a.prep.xb_lo = y;
  a.xb = xb;
  a.xb_lo = xb_lo;
  return r;
}

// The whole-K probes' ring barriers, by thread 0 before a __syncthreads: full[s] (one arrival + the copies' bytes),
// empty[s] (`releases` arrivals: the consumer warps that take the slot's stage), and the scales' barrier.
__device__ __forceinline__ void init_ring_barriers(uint64_t* full, uint64_t* empty, uint64_t* sfull, int slots,
                                                   int releases) {
  using namespace mmfp4::cuda;
  for (int s = 0; s < slots; ++s) {
    mbar_init(&full[s], 1);
    mbar_init(&empty[s], releases);
  }
  mbar_init(sfull, 1);
  mbar_init_fence();
}
