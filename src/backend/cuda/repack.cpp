#include "backend/cuda/repack.h"

#include "core/error.h"

namespace mmfp4::cuda {

Fp4Tiles repack_fp4(const HostWeight& w) {
  MMFP4_ASSERT(w.format == WeightFormat::MMFP4 && w.group_size > 0 && w.k_stored % 8 == 0);
  Fp4Tiles t;
  t.n_tiles = (w.n + 15) / 16;
  t.k_chunks = (w.k_stored + 63) / 64;
  t.groups = (t.k_chunks * 64 + w.group_size - 1) / w.group_size;
  t.codes.assign(size_t(t.n_tiles * t.k_chunks * 128), 0u);
  t.scales.assign(size_t(t.n_tiles * t.groups * 8), 0u);
  const int64_t words = w.k_stored / 8, stored_groups = w.k_stored / w.group_size;
  for (int64_t n = 0; n < w.n; ++n) {
    const uint32_t* row = w.codes + n * words;
    for (int64_t k = 0; k < w.k_stored; ++k) {
      const uint32_t code = (row[k / 8] >> (4 * (k % 8))) & 0xFu;
      int bit = 0;
      const int64_t i = tile_word(t.k_chunks, n, k, &bit);
      t.codes[size_t(i)] |= code << bit;
    }
    const uint16_t* s = w.scales + n * stored_groups;
    for (int64_t g = 0; g < stored_groups; ++g) {
      const int64_t i = ((n / 16) * t.groups + g) * 8 + (n % 8);
      t.scales[size_t(i)] |= uint32_t(s[g]) << ((n % 16) >= 8 ? 16 : 0);
    }
  }
  return t;
}

}  // namespace mmfp4::cuda
