// Shared by the fp8 probes in this folder (measurement scripts, not part of the build): the e4m3 code layout they
// measure and its host-side reference.
//
// The layout: a 32-bit word holds 8 E2M1 codes as two registers' worth of e4m3 bytes. Byte j of the word holds
// register 0's code j at bits {7 sign, 4 e1, 3 e0, 2 m} and register 1's code j at {5 sign, 6 e1, 1 e0, 0 m}, so
// register 0 is one mask and register 1 two shifts and two masks (e4m3_pair). An e4m3 byte with e1 e0 m at bits 4..2
// is the code's value x 2^-6 (code 0.5 an e4m3 subnormal), exact.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

__device__ __forceinline__ void e4m3_pair(uint32_t w, uint32_t& r0, uint32_t& r1) {
  r0 = w & 0x9C9C9C9Cu;
  r1 = ((w << 2) & 0x8C8C8C8Cu) | ((w >> 2) & 0x10101010u);
}

// d (+)= A [64, 32] B [32, 8]: e4m3 inputs, f32 accumulation, issued by a warpgroup; A from registers (per warp the
// m16n8k32 A layout: rows g and g + 8, k 4c..4c+3 and 16 + 4c..), B by its shared-memory descriptor (K-major, no
// swizzle: byte (n, k) at (k / 16) * 128 + 16 n + k % 16). acc = false: d = A B.
__device__ __forceinline__ void wg_mma_e4m3_n8(float (&d)[4], const uint32_t (&a)[4], uint64_t desc, bool acc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0,%1,%2,%3}, {%4,%5,%6,%7}, %8, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(int(acc))
      : "memory");
}

// Host: a 4-bit E2M1 code's value, an e4m3 byte's value, and a code's bits in byte j of a word (register 1 if second).
inline float e2m1_value(int code) {
  static const float mag[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  return (code & 8 ? -1.0f : 1.0f) * mag[code & 7];
}
inline float e4m3_value(int b) {
  const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  const float v = e == 0 ? std::ldexp(float(m) / 8, -6) : std::ldexp(1 + float(m) / 8, e - 7);
  return s ? -v : v;
}
inline uint32_t e4m3_code_bits(int code, int j, bool second) {
  const int s = code >> 3 & 1, e1 = code >> 2 & 1, e0 = code >> 1 & 1, m = code & 1;
  return uint32_t(second ? (s << 5 | e1 << 6 | e0 << 1 | m) : (s << 7 | e1 << 4 | e0 << 3 | m << 2)) << (8 * j);
}

// The loop probes' shared-memory image: `words` words of small finite bf16 / e4m3 bit patterns (no NaN or infinity
// either way), the last `scale_words` of them f16 scale pairs of 1.0.
inline std::vector<uint32_t> loop_image(size_t words, size_t scale_words) {
  std::vector<uint32_t> h(words);
  uint32_t x = 12345;
  for (auto& v : h) {
    x = x * 1664525u + 1013904223u;
    v = x & 0x3B3B3B3Bu;
  }
  for (size_t i = words - scale_words; i < words; ++i) h[i] = 0x3C003C00u;
  return h;
}
