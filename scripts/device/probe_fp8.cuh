// Shared by the fp8 probes in this folder (measurement scripts, not part of the build): the e4m3 code layout they
// measure, its decode and wgmma wrappers, the activations' e4m3 pieces, and the host-side packing and reference.
//
// The layout: a 32-bit word holds 8 E2M1 codes as two registers' worth of e4m3 bytes. Byte j of the word holds
// register 0's code j at bits {7 sign, 4 e1, 3 e0, 2 m} and register 1's code j at {5 sign, 6 e1, 1 e0, 0 m}, so
// register 0 is one mask and register 1 two shifts and two masks (e4m3_pair). An e4m3 byte with e1 e0 m at bits 4..2
// is the code's value x 2^-6 (code 0.5 an e4m3 subnormal), exact.
#pragma once

#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

__device__ __forceinline__ void e4m3_pair(uint32_t w, uint32_t& r0, uint32_t& r1) {
  r0 = w & 0x9C9C9C9Cu;
  r1 = ((w << 2) & 0x8C8C8C8Cu) | ((w >> 2) & 0x10101010u);
}

// Activations as e4m3 pieces: a warp holds a 128-column group of one row, 4 values per lane. group_scale: the power of
// two s that puts the group's largest |x| in [128, 256) (1 for an all-zero group); e4m3_pieces: x s = p0 + p1 + p2 +
// p3, each piece the e4m3 rounding of what the earlier ones left (about 16 significant bits in all), pc[n] holding
// piece n of the 4 values in its bytes.
__device__ __forceinline__ float group_scale(const float4& v) {
  float m = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  int e = 0;
  frexpf(m, &e);  // m = f 2^e, f in [0.5, 1)
  return m > 0.0f ? ldexpf(1.0f, 8 - e) : 1.0f;
}
__device__ __forceinline__ void e4m3_pieces(const float4& v, float s, uint32_t (&pc)[4]) {
  float2 r01 = make_float2(v.x * s, v.y * s), r23 = make_float2(v.z * s, v.w * s);
#pragma unroll
  for (int n = 0; n < 4; ++n) {
    const __nv_fp8x2_storage_t b01 = __nv_cvt_float2_to_fp8x2(r01, __NV_SATFINITE, __NV_E4M3);
    const __nv_fp8x2_storage_t b23 = __nv_cvt_float2_to_fp8x2(r23, __NV_SATFINITE, __NV_E4M3);
    pc[n] = uint32_t(b01) | uint32_t(b23) << 16;
    const float2 f01 = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(b01, __NV_E4M3)));
    const float2 f23 = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(b23, __NV_E4M3)));
    r01.x -= f01.x;
    r01.y -= f01.y;
    r23.x -= f23.x;
    r23.y -= f23.y;
  }
}

// Chunk pair pp (chunks 2 pp and 2 pp + 1: 4 k32 steps) of one tile's stage (2 KB at `tile`, packed as
// make_fp8_linear does) -> the steps' A fragments, step i in a[i]; zeros where !real (a warpgroup's idle warp).
__device__ __forceinline__ void decode_chunk_pair(const unsigned char* tile, int pp, int lane, bool real,
                                                  uint32_t (&a)[4][4]) {
#pragma unroll
  for (int v = 0; v < 2; ++v) {
    const uint4 w =
        real ? *reinterpret_cast<const uint4*>(tile + (2 * pp + v) * 512 + lane * 16) : make_uint4(0, 0, 0, 0);
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      e4m3_pair(words[2 * b], a[2 * v + b][0], a[2 * v + b][1]);
      e4m3_pair(words[2 * b + 1], a[2 * v + b][2], a[2 * v + b][3]);
    }
  }
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

// The same for 64 columns (16 tokens x 4 pieces): d[4 j + 0/1] = row g, columns 8 j + 2 c (+1), d[4 j + 2/3] = row
// g + 8; B (K-major, no swizzle) byte (n, k) at (k / 16) * 1024 + 16 n + k % 16.
__device__ __forceinline__ void wg_mma_e4m3_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, bool acc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
      "}, {%32,%33,%34,%35}, %36, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
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
// Random host operands for the layout checks (rand()): a 4-bit code, an e4m3 byte that is not NaN.
inline int random_code() { return rand() & 15; }
inline int random_e4m3() {
  int b;
  do b = rand() & 255;
  while ((b & 0x7F) == 0x7F);
  return b;
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

// A random MMFP4 linear [n, k] (groups of 128 columns) and m activation rows for the fp8 whole-K probes: codes W
// (4-bit E2M1) and scales sc (exact in f16) on the host; the codes packed in 16-row tiles of 64-column chunks, lane l
// of a chunk's 512 bytes holding 4 words, word 2 b + h with rows g, g + 8 (g = l / 4) at columns 32 b + 16 h + 4 c +
// 0..3 (c = l % 4), codes in the e4m3 layout above (one k32 step's A fragments per word pair); the scales as the
// engine's [tile][group][8] words (row g low half, g + 8 high).
struct Fp8Linear {
  int n, k, m;
  std::vector<uint8_t> W;
  std::vector<float> sc, x;
  std::vector<uint32_t> codes, scales;
  double ref(int tok, int row) const {  // sum_k W sc x in double
    double r = 0;
    for (int c = 0; c < k; ++c)
      r += double(e2m1_value(W[size_t(row) * k + c])) * sc[size_t(row) * (k / 128) + c / 128] * x[size_t(tok) * k + c];
    return r;
  }
};

inline Fp8Linear make_fp8_linear(int n, int k, int m) {
  Fp8Linear L{n, k, m, std::vector<uint8_t>(size_t(n) * k), std::vector<float>(size_t(n) * (k / 128)),
              std::vector<float>(size_t(m) * k), std::vector<uint32_t>(size_t(n) * k / 8),
              std::vector<uint32_t>(size_t(n / 16) * (k / 128) * 8)};
  uint32_t r = 1;
  auto rnd = [&]() { return r = r * 1664525u + 1013904223u; };
  for (auto& v : L.W) v = uint8_t(rnd() >> 28);
  for (auto& v : L.sc) v = float(int(rnd() >> 24) % 64 + 16) / 1024.0f;  // exact in f16
  for (auto& v : L.x) v = float(int(rnd() >> 20) % 4001 - 2000) / 1000.0f;
  const int kch = k / 64, groups = k / 128;
  for (int t = 0; t < n / 16; ++t)
    for (int ch = 0; ch < kch; ++ch)
      for (int l = 0; l < 32; ++l)
        for (int i = 0; i < 4; ++i) {
          const int g = l >> 2, c = l & 3, b = i >> 1, h = i & 1;
          uint32_t w = 0;
          for (int j = 0; j < 4; ++j) {
            const int col = 64 * ch + 32 * b + 16 * h + 4 * c + j;
            w |= e4m3_code_bits(L.W[size_t(16 * t + g) * k + col], j, false) |
                 e4m3_code_bits(L.W[size_t(16 * t + g + 8) * k + col], j, true);
          }
          L.codes[((size_t(t) * kch + ch) * 512 + l * 16 + i * 4) / 4] = w;
        }
  auto f16 = [](float f) {  // exact for these scales
    int e;
    const float mant = std::frexp(f, &e);
    return uint32_t(((e - 1 + 15) << 10) | (int((mant * 2 - 1) * 1024) & 0x3FF));
  };
  for (int t = 0; t < n / 16; ++t)
    for (int gr = 0; gr < groups; ++gr)
      for (int g = 0; g < 8; ++g)
        L.scales[(size_t(t) * groups + gr) * 8 + g] =
            f16(L.sc[size_t(16 * t + g) * groups + gr]) | f16(L.sc[size_t(16 * t + g + 8) * groups + gr]) << 16;
  return L;
}
