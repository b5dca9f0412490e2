// The per-ISA GEMM kernels on P64-packed weights (packed_weight.h) and the table the CPU backend dispatches
// through. Two paths, with identical per-element arithmetic (so the choice between them never changes a result):
//   fused  (small M, decode): codes are expanded to floats in registers and multiplied straight away; the panel
//          is streamed from memory once per call. This is the memory-bandwidth-bound GEMV.
//   packed (large M, prefill): a [kc x nr] slice of the panel is expanded once into a float buffer and a
//          register-blocked micro-kernel (kMR rows x nr columns) runs over every tile of rows, so expansion is
//          amortised over M and the FMA units stay busy; rows of x are pre-packed k-major in tiles of kMR.
#pragma once

#include <cstdint>

#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/packed_weight.h"

#define MMFP4_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))

namespace mmfp4 {

constexpr int kFusedMaxM = 4;  // rows of x per fused call
constexpr int kMR = 6;         // rows per packed micro-tile

// Fused path: outputs [col0, col0 + cols) of one panel for m rows of x (1..kFusedMaxM), written to
// out[i * out_stride + (j - col0)] (added to it when accumulate).
struct FusedArgs {
  const float* x = nullptr;  // [m, w.k], row stride x_stride
  int64_t x_stride = 0;
  int m = 1;
  const PackedWeight* w = nullptr;
  int64_t panel = 0;
  int col0 = 0, cols = kPanelRows;
  float* out = nullptr;
  int64_t out_stride = 0;
  bool accumulate = false;
};

// Packed path micro-tile: C[mr, nr] (row stride ldc) continues the per-element accumulation over k-block
// [k0, k0 + kc) (C is read unless first).
struct TileArgs {
  const float* a = nullptr;  // [kc][kMR]: the tile's rows of x, k-major (rows >= mr are zero)
  const float* b = nullptr;  // [kc][nr]: weights (MMFP4: c * 2^25)
  const float* s = nullptr;  // MMFP4: [kc / group][nr] scales * 2^-25; null for dense
  int64_t kc = 0;
  int group = 0;             // MMFP4 group size (kc is a multiple of it); 0 for dense
  int mr = kMR;
  float* c = nullptr;
  int64_t ldc = 0;
  bool first = true;
};

struct CpuKernels {
  CpuIsa isa = CpuIsa::Avx2;
  int nr = 16;  // packed-path columns per micro-tile (divides kPanelRows)
  // Rows of x up to which the fused path is faster than the packed one (measured per core, thread CPU time, on a
  // Zen 4: AVX-512 fused 105 GFLOP/s at every M from 8 to 512, packed 75 at M = 16 and 105 at M = 512; AVX2 fused
  // 74 at M = 16 and 82 at M = 512, packed 76 and 104).
  int64_t fused_max_rows = 8;
  void (*fused)(const FusedArgs& a) = nullptr;
  // Expands columns [c0, c0 + nr) of `panel`, k in [k0, k1) (multiples of the group size), into
  // b[(k - k0) * nr + c] and, for MMFP4, s[(g - k0 / group) * nr + c].
  void (*expand)(const PackedWeight& w, int64_t panel, int c0, int64_t k0, int64_t k1, float* b, float* s) = nullptr;
  void (*tile)(const TileArgs& t) = nullptr;
  // MLA's absorbed query (the transpose product): out[t][j] = sum_i q[t][i] * W[row0 + i, j] for j < w.k, i < rows,
  // for nq (1..absorb_max_q) query rows q + t * q_stride -> out + t * out_stride, on an MMFP4 weight. Rows are taken
  // absorb_lanes at a time as vector lanes (row0 and rows must be multiples of it); each lane accumulates its rows
  // in order, then the lanes are summed in a fixed tree (the same for any nq).
  int absorb_lanes = 8;
  int absorb_max_q = 1;
  void (*absorb)(const PackedWeight& w, int64_t row0, int64_t rows, const float* q, int64_t q_stride, int nq,
                 float* out, int64_t out_stride) = nullptr;
};

const CpuKernels& cpu_kernels(CpuIsa isa);

// Defined in gemm_avx2.cpp / gemm_avx512.cpp.
void fill_kernels_avx2(CpuKernels& k);
void fill_kernels_avx512(CpuKernels& k);

}  // namespace mmfp4
