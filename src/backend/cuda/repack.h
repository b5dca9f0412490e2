// Load-time repacking of MMFP4 weights into the tile layout the CUDA tensor-core kernels read (docs/format.md,
// "CUDA layout"). Plain C++, no device code, so the layout is tested on any machine.
//
// A tile is 16 rows x 64 columns (512 codes = 512 bytes): 32 lanes x 16 bytes, so one warp reads a tile with one
// coalesced 16-byte load per lane, and each lane's 4 words are its A fragments for the 4 mma.m16n8k16 steps of the
// tile, with no shuffles and no shared memory. Lane 4g + c, word j = 2b + s (b: 32-column half, s: mma step) holds
// eight codes: pair i = 2 * pr + hi at bits [4i, 4i + 4) (even column) and [16 + 4i, 16 + 4i + 4) (odd column), for
// row g + 8 * hi and columns 32b + 8c + 4s + 2 * pr + {0, 1}.
// The columns an mma step sees are a permutation of the natural ones (8c + 4s + {0..3} for the lane group c); the
// activations are laid out with the same permutation (kernels.h, PrepArgs), and a dot product does not care about
// the order of its terms. Scales: [tile row][group][8] words, word g = scale(row g) | scale(row g + 8) << 16.
#pragma once

#include <cstdint>
#include <vector>

#include "format/weight.h"

namespace mmfp4::cuda {

struct Fp4Tiles {
  int64_t n_tiles = 0, k_chunks = 0, groups = 0;
  int layout = 1;                // 1 or 2 (below)
  std::vector<uint32_t> codes;   // [n_tiles][k_chunks][32][4]
  std::vector<uint32_t> scales;  // [n_tiles][groups][8]
};

// Layout 2 (FastPaths::dequant): the same words as layout 1, each code's four bits moved inside its word so that
// the bf16 bits of pair i come out with one mask (and a shift): bit b (m, e0, e1, sign) of pair i's even-column code
// is at kV2Bit[i][b], the odd column's 16 higher. Pairs 0..2 are then (w << {0, 3, 6}) & 0x81C081C0 (mantissa at
// bf16 bit 6, exponent at 7..8, sign at 15: common.cuh, e2m1x2_to_bf16x2), pair 3 three shifts: ~15 operations per
// word instead of ~23 (common.cuh, fp4_fragment). No single-shift layout exists for all four pairs.
inline constexpr int kV2Bit[4][4] = {{6, 7, 8, 15}, {3, 4, 5, 12}, {0, 1, 2, 9}, {10, 11, 13, 14}};

// Layout 1 word -> layout 2 word (a permutation of its 32 bits).
inline uint32_t v2_word(uint32_t w) {
  uint32_t out = 0;
  for (int e = 0; e < 2; ++e)
    for (int i = 0; i < 4; ++i)
      for (int b = 0; b < 4; ++b) out |= ((w >> (16 * e + 4 * i + b)) & 1u) << (kV2Bit[i][b] + 16 * e);
  return out;
}

// The code a word holds at layout-1 bit offset `bit` (tile_word below), in either layout.
inline uint32_t code_in_word(uint32_t word, int bit, int layout) {
  if (layout != 2) return (word >> bit) & 0xFu;
  const int i = (bit % 16) / 4, e = bit / 16;
  uint32_t c = 0;
  for (int b = 0; b < 4; ++b) c |= ((word >> (kV2Bit[i][b] + 16 * e)) & 1u) << b;
  return c;
}

// w must be MMFP4; rows past n and columns past k_stored are zero codes, groups past the stored ones scale 0.
Fp4Tiles repack_fp4(const HostWeight& w, int layout = 1);

// Index of the word holding code (n, k) in the tile layout, and the bit offset of its nibble.
inline int64_t tile_word(int64_t k_chunks, int64_t n, int64_t k, int* bit) {
  const int64_t nt = n / 16, kc = k / 64;
  const int r = int(n % 16), g = r % 8, hi = r / 8;
  const int kk = int(k % 64), b = kk / 32, w = kk % 32, c = w / 8, p = w % 8, s = p / 4, q = p % 4;
  const int pr = q / 2, e = q % 2;
  *bit = 4 * (2 * pr + hi) + 16 * e;
  return ((nt * k_chunks + kc) * 32 + (4 * g + c)) * 4 + (2 * b + s);
}

}  // namespace mmfp4::cuda
