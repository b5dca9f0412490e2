// Element access to any weight the CUDA backend holds (tile-layout MMFP4 or dense rows), for the kernels that are
// not on the hot path (generic fallback linear, embedding rows, the absorbed-MLA query product). Mirrors
// repack.h's tile_word(); the value is the stored (possibly rotated) weight, in float32, exactly.
#pragma once

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace mmfp4::cuda {

__device__ __forceinline__ float weight_at(const GemmWeight& w, int expert, int n, int k) {
  n += w.row0;
  if (w.kind == WKind::Fp4) {
    const int nt = n / 16, r = n % 16, g = r % 8, hi = r / 8;
    const int kc = k / 64, kk = k % 64, b = kk / 32, q32 = kk % 32, c = q32 / 8, p = q32 % 8, s = p / 4, q = p % 4;
    const int bit = 4 * (2 * (q / 2) + hi) + 16 * (q % 2);
    const uint32_t* codes = static_cast<const uint32_t*>(w.data) + expert * w.expert_stride * 4;
    const uint32_t word = codes[((int64_t(nt) * w.k_chunks + kc) * 32 + (4 * g + c)) * 4 + (2 * b + s)];
    const uint32_t sw = w.scales[expert * w.expert_scale_stride + (int64_t(nt) * w.groups + k / w.group_size) * 8 + g];
    const float scale = f16_bits_to_f32(uint16_t(hi ? sw >> 16 : sw & 0xFFFF));
    uint32_t code = (word >> bit) & 0xF;
    if (w.layout == 2) {  // repack.h, kV2Bit: bit b of pair i's code
      const int i = (bit % 16) / 4, e = 16 * (bit / 16);
      const int pos[4][4] = {{6, 7, 8, 15}, {3, 4, 5, 12}, {0, 1, 2, 9}, {10, 11, 13, 14}};
      code = 0;
#pragma unroll
      for (int b2 = 0; b2 < 4; ++b2) code |= ((word >> (pos[i][b2] + e)) & 1u) << b2;
    }
    return e2m1_value(code) * scale;
  }
  const int64_t i = expert * w.expert_stride + int64_t(n) * w.k + k;
  switch (w.kind) {
    case WKind::Bf16: return bf16_bits_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case WKind::F16: return f16_bits_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    default: return static_cast<const float*>(w.data)[i];
  }
}

}  // namespace mmfp4::cuda
