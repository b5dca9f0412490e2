// The MMFP4 tile layout of the CUDA kernels (repack.h): every code and scale lands where the kernels look for it,
// on shapes off the tile multiples. Plain C++: runs on every machine, GPU or not.
#include <gtest/gtest.h>

#include <random>

#include "backend/cuda/repack.h"

namespace mmfp4::cuda {
namespace {

TEST(CudaRepack, EveryCodeAndScaleIsWhereTheKernelsRead) {
  std::mt19937_64 rng(1);
  struct Shape {
    int64_t n, k;
    int group;
  };
  for (int layout : {1, 2})
  for (Shape s : {Shape{1, 64, 64}, Shape{17, 96, 32}, Shape{100, 384, 128}, Shape{33, 200, 40}, Shape{16, 8, 8}}) {
    std::vector<uint32_t> codes(size_t(s.n * s.k / 8));
    std::vector<uint16_t> scales(size_t(s.n * s.k / s.group));
    for (auto& c : codes) c = uint32_t(rng());
    for (auto& v : scales) v = uint16_t(rng());
    HostWeight w;
    w.format = WeightFormat::MMFP4;
    w.n = s.n;
    w.k = w.k_stored = s.k;
    w.group_size = s.group;
    w.codes = codes.data();
    w.scales = scales.data();
    const Fp4Tiles t = repack_fp4(w, layout);
    EXPECT_EQ(t.layout, layout);
    EXPECT_EQ(t.n_tiles, (s.n + 15) / 16);
    EXPECT_EQ(t.k_chunks, (s.k + 63) / 64);
    std::vector<int> seen(t.codes.size() * 8, 0);
    for (int64_t n = 0; n < t.n_tiles * 16; ++n)
      for (int64_t k = 0; k < t.k_chunks * 64; ++k) {
        int bit = 0;
        const int64_t i = tile_word(t.k_chunks, n, k, &bit);
        ASSERT_LT(size_t(i), t.codes.size());
        ++seen[size_t(i) * 8 + size_t(bit / 4)];
        const uint32_t got = code_in_word(t.codes[size_t(i)], bit, layout);
        const uint32_t want = (n < s.n && k < s.k) ? (codes[size_t(n * (s.k / 8) + k / 8)] >> (4 * (k % 8))) & 0xF : 0;
        ASSERT_EQ(got, want) << "n " << n << " k " << k;
      }
    for (int v : seen) ASSERT_EQ(v, 1);  // the layout is a bijection: no nibble used twice or left out
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t g = 0; g < s.k / s.group; ++g) {
        const uint32_t word = t.scales[size_t(((n / 16) * t.groups + g) * 8 + n % 8)];
        const uint16_t got = uint16_t((n % 16) >= 8 ? word >> 16 : word & 0xFFFF);
        ASSERT_EQ(got, scales[size_t(n * (s.k / s.group) + g)]) << "n " << n << " group " << g;
      }
  }
}

// Layout 2 decodes with the kernels' formulas (common.cuh, fp4_fragment): pairs 0..2 are (w << {0, 3, 6}) & mask,
// pair 3 three shifts; each gives the layout-1 pair's bf16 bits (e2m1x2_to_bf16x2's placement) for every word.
TEST(CudaRepack, Layout2DecodesToTheSameBf16Bits) {
  std::mt19937_64 rng(2);
  auto place = [](uint32_t t) { return ((t << 6) & 0x01C001C0u) | ((t << 12) & 0x80008000u); };  // layout 1, pair 0
  for (int rep = 0; rep < 100000; ++rep) {
    const uint32_t w1 = uint32_t(rng()), w2 = v2_word(w1);
    const uint32_t M = 0x81C081C0u;
    const uint32_t got[4] = {w2 & M, (w2 << 3) & M, (w2 << 6) & M,
                             ((w2 << 1) & 0x80008000u) | ((w2 >> 5) & 0x01000100u) | ((w2 >> 4) & 0x00C000C0u)};
    for (int i = 0; i < 4; ++i) ASSERT_EQ(got[i], place(w1 >> (4 * i))) << std::hex << w1 << " pair " << i;
  }
}

}  // namespace
}  // namespace mmfp4::cuda
