#include <gtest/gtest.h>

#include <immintrin.h>

#include <cmath>

#include "core/half.h"

using namespace mmfp4;

TEST(Half, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
}

TEST(Half, F16RoundsToNearestEven) {
  // Compare against the hardware conversion (F16C) on many random floats, subnormals and overflow included.
  uint32_t s = 12345;
  for (int i = 0; i < 1000000; ++i) {
    s = s * 1664525u + 1013904223u;
    float f = bits_to_f32((s & 0x807fffffu) | ((100u + (s >> 24) % 60u) << 23));
    uint16_t hw = uint16_t(_cvtss_sh(f, 0));
    EXPECT_EQ(f32_to_f16(f), hw) << f;
    if (f32_to_f16(f) != hw) break;
  }
}

TEST(Half, BF16) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808000u)), 0x3f80);  // tie to even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f818000u)), 0x3f82);
}
