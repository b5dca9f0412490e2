// AVX2 + FMA + F16C GEMM kernels (the baseline every build has).
//
// Code expansion without a 16-entry float permute: 32 bytes of code words are split into low and high nibbles
// (and, shift, and), looked up with vpshufb in the table of 2c as int8 (kE2M1x2), and each of the 8 bytes of a
// 32-bit lane is then moved into the top byte of its own lane, zeros below, by one more vpshufb. The lane then holds
// the integer 2c * 2^24 = c * 2^25 exactly, and vcvtdq2ps makes it a float with no further scaling: per 8 weights,
// one shuffle, one conversion and one FMA (plus a quarter of the nibble split).
#include <immintrin.h>

#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/gemm_tile.h"
#include "core/error.h"

namespace mmfp4 {

namespace {

// kSpread[b]: in every 32-bit lane, byte 3 <- byte b of the same lane; bytes 0..2 <- 0.
struct SpreadTable {
  alignas(32) int8_t t[4][32];
  constexpr SpreadTable() : t{} {
    for (int b = 0; b < 4; ++b)
      for (int i = 0; i < 32; ++i) t[b][i] = (i % 4 == 3) ? int8_t((i % 16) / 4 * 4 + b) : int8_t(0x80);
  }
};
constexpr SpreadTable kSpread;

inline __m256i nibble_lut() { return _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kE2M1x2))); }

// 8 f16 scales -> floats * 2^-25.
inline __m256 scales8(const uint16_t* s) {
  return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s))),
                       _mm256_set1_ps(kInvCodeScale));
}

// Weights of nibble s (0..7) of 8 code words, given their low (L) and high (H) nibbles looked up as int8.
inline __m256 spread(__m256i L, __m256i H, int s) {
  const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(kSpread.t[s / 2]));
  return _mm256_cvtepi32_ps(_mm256_shuffle_epi8((s & 1) ? H : L, idx));
}

// Rows [r0, r0 + 8 * NCH) of the panel for M rows of x, into tile[i][r0 ..]. M * NCH <= 8 accumulator chains.
template <int M, int NCH>
inline void fused_mmfp4_pass(const FusedArgs& a, int r0, float (*tile)[kPanelRows]) {
  const PackedWeight& w = *a.w;
  const __m256i lut = nibble_lut(), m0f = _mm256_set1_epi8(0x0F);
  const int64_t groups = w.k / w.group, kwg = w.group / 8;
  __m256 acc[M][NCH];
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < NCH; ++q) acc[i][q] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const uint32_t* codes = w.codes(a.panel, g) + r0;
    const float* xg = a.x + g * w.group;
    __m256 ga[M][NCH];
    for (int i = 0; i < M; ++i)
      for (int q = 0; q < NCH; ++q) ga[i][q] = _mm256_setzero_ps();
    for (int64_t j = 0; j < kwg; ++j) {
      // Two chains at a time, their FMAs interleaved: each chain's 8 FMAs per k-word are serially dependent.
      constexpr int QP = NCH % 2 == 0 ? 2 : 1;
#pragma GCC unroll 4
      for (int q = 0; q < NCH; q += QP) {
        __m256i L[QP], H[QP];
        for (int u = 0; u < QP; ++u) {
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + j * kPanelRows + 8 * (q + u)));
          L[u] = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m0f));
          H[u] = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f));
        }
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
          for (int u = 0; u < QP; ++u) {
            const __m256 wv = spread(L[u], H[u], s);
            for (int i = 0; i < M; ++i)
              ga[i][q + u] = _mm256_fmadd_ps(_mm256_broadcast_ss(xg + i * a.x_stride + j * 8 + s), wv, ga[i][q + u]);
          }
        }
      }
    }
    const uint16_t* sc = w.scales(a.panel, g) + r0;
    for (int q = 0; q < NCH; ++q) {
      const __m256 s = scales8(sc + 8 * q);
      for (int i = 0; i < M; ++i) acc[i][q] = _mm256_fmadd_ps(ga[i][q], s, acc[i][q]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < NCH; ++q) _mm256_store_ps(&tile[i][r0 + 8 * q], acc[i][q]);
}

template <DType T>
inline __m256 load8(const uint8_t* p, int q) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + 8 * q);
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p) + q));
  } else {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p) + q));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
}

template <int M, int NCH, DType T>
inline void fused_dense_pass(const FusedArgs& a, int r0, float (*tile)[kPanelRows]) {
  const PackedWeight& w = *a.w;
  constexpr int64_t es = T == DType::F32 ? 4 : 2;
  const uint8_t* p = w.panel(a.panel) + r0 * es;
  __m256 acc[M][NCH];
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < NCH; ++q) acc[i][q] = _mm256_setzero_ps();
  for (int64_t k = 0; k < w.k; ++k) {
    const uint8_t* pk = p + k * kPanelRows * es;
#pragma GCC unroll 8
    for (int q = 0; q < NCH; ++q) {
      const __m256 wv = load8<T>(pk, q);
      for (int i = 0; i < M; ++i) acc[i][q] = _mm256_fmadd_ps(_mm256_broadcast_ss(a.x + i * a.x_stride + k), wv, acc[i][q]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < NCH; ++q) _mm256_store_ps(&tile[i][r0 + 8 * q], acc[i][q]);
}

template <int M>
void fused_m(const FusedArgs& a) {
  constexpr int NCH = 8 / (M == 3 ? 4 : M);  // chains of 8 rows per pass: 8, 4, 2, 2
  alignas(32) float tile[M][kPanelRows];
  for (int r0 = 0; r0 < kPanelRows; r0 += 8 * NCH) {
    if (a.w->mmfp4()) {
      fused_mmfp4_pass<M, NCH>(a, r0, tile);
    } else {
      switch (a.w->dtype) {
        case DType::F32: fused_dense_pass<M, NCH, DType::F32>(a, r0, tile); break;
        case DType::F16: fused_dense_pass<M, NCH, DType::F16>(a, r0, tile); break;
        case DType::BF16: fused_dense_pass<M, NCH, DType::BF16>(a, r0, tile); break;
        default: MMFP4_ASSERT(false && "dense weights are F32, F16 or BF16");
      }
    }
  }
  for (int i = 0; i < M; ++i) {
    float* o = a.out + i * a.out_stride;
    const float* t = tile[i] + a.col0;
    if (a.accumulate) {
      for (int j = 0; j < a.cols; ++j) o[j] = o[j] + t[j];
    } else {
      for (int j = 0; j < a.cols; ++j) o[j] = t[j];
    }
  }
}

constexpr int kNR = 16;

void expand(const PackedWeight& w, int64_t panel, int c0, int64_t k0, int64_t k1, float* b, float* s) {
  if (w.mmfp4()) {
    const __m256i lut = nibble_lut(), m0f = _mm256_set1_epi8(0x0F);
    const int64_t kwg = w.group / 8;
    for (int64_t g = k0 / w.group; g < k1 / w.group; ++g) {
      const uint32_t* codes = w.codes(panel, g) + c0;
      const uint16_t* sc = w.scales(panel, g) + c0;
      float* sg = s + (g - k0 / w.group) * kNR;
      _mm256_store_ps(sg, scales8(sc));
      _mm256_store_ps(sg + 8, scales8(sc + 8));
      for (int64_t j = 0; j < kwg; ++j) {
        float* bj = b + ((g * w.group + j * 8) - k0) * kNR;
        for (int q = 0; q < 2; ++q) {
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + j * kPanelRows + 8 * q));
          const __m256i L = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m0f));
          const __m256i H = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f));
#pragma GCC unroll 8
          for (int t = 0; t < 8; ++t) _mm256_store_ps(bj + t * kNR + 8 * q, spread(L, H, t));
        }
      }
    }
    return;
  }
  const int64_t es = int64_t(dtype_size(w.dtype));
  const uint8_t* p = w.panel(panel) + c0 * es;
  for (int64_t k = k0; k < k1; ++k) {
    const uint8_t* pk = p + k * kPanelRows * es;
    float* bk = b + (k - k0) * kNR;
    for (int q = 0; q < 2; ++q) {
      switch (w.dtype) {
        case DType::F32: _mm256_store_ps(bk + 8 * q, load8<DType::F32>(pk, q)); break;
        case DType::F16: _mm256_store_ps(bk + 8 * q, load8<DType::F16>(pk, q)); break;
        default: _mm256_store_ps(bk + 8 * q, load8<DType::BF16>(pk, q)); break;
      }
    }
  }
}

struct V8 {
  using T = __m256;
  static constexpr int kW = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_load_ps(p); }
  static T loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
};


// 8 rows per lane group; q is pre-multiplied by each row's scale of the group (the weight itself is c * 2^25).
void absorb(const PackedWeight& w, int64_t row0, int64_t rows, const float* q, int64_t q_stride, int nq, float* out,
            int64_t out_stride) {
  MMFP4_ASSERT(nq == 1);
  (void)q_stride;
  (void)out_stride;
  const __m256i lut = nibble_lut(), m0f = _mm256_set1_epi8(0x0F);
  const int64_t chunks = rows / 8, kwg = w.group / 8;
  constexpr int kMaxChunks = 128;  // rows <= 1024 per call (the driver splits longer heads)
  alignas(32) float qs[kMaxChunks][8];
  for (int64_t g = 0; g < w.k / w.group; ++g) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r = row0 + 8 * c;
      _mm256_store_ps(qs[c], _mm256_mul_ps(_mm256_loadu_ps(q + 8 * c), scales8(w.scales(r / kPanelRows, g) + r % kPanelRows)));
    }
    for (int64_t j = 0; j < kwg; ++j) {
      __m256 acc[8];
      for (int s = 0; s < 8; ++s) acc[s] = _mm256_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t r = row0 + 8 * c;
        const __m256i v = _mm256_load_si256(
            reinterpret_cast<const __m256i*>(w.codes(r / kPanelRows, g) + j * kPanelRows + r % kPanelRows));
        const __m256i L = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m0f));
        const __m256i H = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f));
        const __m256 qv = _mm256_load_ps(qs[c]);
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) acc[s] = _mm256_fmadd_ps(qv, spread(L, H, s), acc[s]);
      }
      _mm256_storeu_ps(out + (g * kwg + j) * 8, hsum8x8(acc));
    }
  }
}

}  // namespace

void fill_kernels_avx2(CpuKernels& k) {
  k.absorb_lanes = 8;
  k.absorb_max_q = 1;
  k.absorb = absorb;
  k.isa = CpuIsa::Avx2;
  k.fused_max_rows = 12;
  k.nr = kNR;
  k.fused = fused_any<fused_m<1>, fused_m<2>, fused_m<3>, fused_m<4>>;
  k.expand = expand;
  k.tile = tile_any<V8>;
}

}  // namespace mmfp4
