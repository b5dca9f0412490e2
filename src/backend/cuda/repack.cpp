#include "backend/cuda/repack.h"

#include "core/error.h"
#include "core/thread_pool.h"

namespace mmfp4::cuda {

namespace {

// Four codes a0..a3 (nibbles of a 16-bit value) -> a0 at bit 0, a2 at bit 8, a1 at bit 16, a3 at bit 24: the
// even/odd columns of pairs 0 and 2 of a tile word (repack.h); the g + 8 row's codes go 4 bits higher.
inline uint32_t spread(uint32_t a) {
  return (a & 0xFu) | ((a >> 8) & 0xFu) << 8 | ((a >> 4) & 0xFu) << 16 | ((a >> 12) & 0xFu) << 24;
}

}  // namespace

Fp4Tiles repack_fp4(const HostWeight& w, int layout) {
  MMFP4_ASSERT(w.format == WeightFormat::MMFP4 && w.group_size > 0 && w.k_stored % 8 == 0);
  MMFP4_ASSERT(layout == 1 || layout == 2);
  Fp4Tiles t;
  t.layout = layout;
  t.n_tiles = (w.n + 15) / 16;
  t.k_chunks = (w.k_stored + 63) / 64;
  t.groups = (t.k_chunks * 64 + w.group_size - 1) / w.group_size;
  t.codes.assign(size_t(t.n_tiles * t.k_chunks * 128), 0u);
  t.scales.assign(size_t(t.n_tiles * t.groups * 8), 0u);
  const int64_t words = w.k_stored / 8, stored_groups = w.k_stored / w.group_size;
  auto src = [&](int64_t n, int64_t kw) -> uint32_t {
    return (n < w.n && kw < words) ? w.codes[n * words + kw] : 0u;
  };
  // Word (lane 4g + c, j = 2b + s) of tile (nt, kc) holds columns 32b + 8c + 4s + 0..3 of rows g and g + 8: four
  // codes of one source word per row. Whole tiles per task, in parallel (a 30B-parameter model has 15 G codes).
  ThreadPool::global().parallel_for(t.n_tiles, 1, [&](int64_t t0, int64_t t1, int) {
    for (int64_t nt = t0; nt < t1; ++nt)
      for (int64_t kc = 0; kc < t.k_chunks; ++kc) {
        uint32_t* dst = t.codes.data() + (nt * t.k_chunks + kc) * 128;
        for (int g = 0; g < 8; ++g)
          for (int c = 0; c < 4; ++c)
            for (int b = 0; b < 2; ++b) {
              const int64_t kw = kc * 8 + 4 * b + c;
              const uint32_t lo = src(nt * 16 + g, kw), hi = src(nt * 16 + g + 8, kw);
              for (int s = 0; s < 2; ++s) {
                const uint32_t word = spread((lo >> (16 * s)) & 0xFFFFu) | spread((hi >> (16 * s)) & 0xFFFFu) << 4;
                dst[(4 * g + c) * 4 + 2 * b + s] = layout == 2 ? v2_word(word) : word;
              }
            }
      }
    for (int64_t nt = t0; nt < t1; ++nt)
      for (int64_t r = 0; r < 16 && nt * 16 + r < w.n; ++r) {
        const int64_t n = nt * 16 + r;
        const uint16_t* sc = w.scales + n * stored_groups;
        for (int64_t g = 0; g < stored_groups; ++g)
          t.scales[size_t((nt * t.groups + g) * 8 + r % 8)] |= uint32_t(sc[g]) << (r >= 8 ? 16 : 0);
      }
  });
  return t;
}

}  // namespace mmfp4::cuda
