// AVX-512 GEMM kernels (F/BW/VL/DQ, compiled with target attributes and only called when cpuid has them).
//
// Code expansion: vpermps with a zmm index uses only the low 4 bits of each 32-bit lane, so a 16-entry float
// table (E2M1 * 2^25) turns the low nibble of 16 canonical code words into 16 weights in one instruction; the other
// seven nibbles of the same words are reached by shifting right 4, 8, ... 28 bits. A k-word of a P64 panel
// (4 zmm of words) thus costs 7 shifts + 8 permutes + 8 FMAs per 16 rows: 3 vector instructions per 16 weights,
// and the x broadcast rides on the FMA's memory operand. On Zen 4 (512-bit ops double-pumped on 256-bit pipes)
// that is ~8 weights per cycle per core, at the memory bandwidth of two cores.
// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics headers as uninitialized (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/gemm_kernels.h"
#include "core/error.h"

// The shared micro-kernel (gemm_tile.h) is compiled for AVX-512 in this file: every function defined between
// push_options and pop_options gets the target, as MMFP4_TARGET_AVX512 gives the ones below.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
namespace mmfp4 {
namespace {
struct V16 {
  using T = __m512;
  static constexpr int kW = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_load_ps(p); }
  static T loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T bcast(const float* p) { return _mm512_set1_ps(*p); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
};
}  // namespace
}  // namespace mmfp4
#include "backend/cpu/gemm_tile.h"
#pragma GCC pop_options

namespace mmfp4 {

namespace {

MMFP4_TARGET_AVX512 inline __m512 scales16(const uint16_t* s) {
  return _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s))),
                       _mm512_set1_ps(kInvCodeScale));
}

// acc[M][4] (64 outputs per row) -> out columns [col0, col0 + cols).
template <int M>
MMFP4_TARGET_AVX512 inline void store_panel(const FusedArgs& a, const __m512 (&acc)[M][4]) {
  if (a.col0 == 0 && a.cols == kPanelRows) {
    for (int i = 0; i < M; ++i) {
      float* o = a.out + i * a.out_stride;
      for (int q = 0; q < 4; ++q) {
        __m512 v = acc[i][q];
        if (a.accumulate) v = _mm512_add_ps(_mm512_loadu_ps(o + 16 * q), v);
        _mm512_storeu_ps(o + 16 * q, v);
      }
    }
    return;
  }
  alignas(64) float tile[M][kPanelRows];
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < 4; ++q) _mm512_store_ps(&tile[i][16 * q], acc[i][q]);
  for (int i = 0; i < M; ++i) {
    float* o = a.out + i * a.out_stride;
    for (int j = 0; j < a.cols; ++j) o[j] = a.accumulate ? o[j] + tile[i][a.col0 + j] : tile[i][a.col0 + j];
  }
}

template <int M>
MMFP4_TARGET_AVX512 void fused_mmfp4(const FusedArgs& a) {
  const PackedWeight& w = *a.w;
  const __m512 lut = _mm512_load_ps(kE2M1x25);
  const int64_t groups = w.k / w.group, kwg = w.group / 8;
  __m512 acc[M][4];
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < 4; ++q) acc[i][q] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const uint32_t* codes = w.codes(a.panel, g);
    const float* xg = a.x + g * w.group;
    __m512 ga[M][4];
    for (int i = 0; i < M; ++i)
      for (int q = 0; q < 4; ++q) ga[i][q] = _mm512_setzero_ps();
    for (int64_t j = 0; j < kwg; ++j) {
      const uint32_t* cj = codes + j * kPanelRows;
      const __m512i v0 = _mm512_load_si512(cj), v1 = _mm512_load_si512(cj + 16),
                    v2 = _mm512_load_si512(cj + 32), v3 = _mm512_load_si512(cj + 48);
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        const __m512 w0 = _mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4 * s), lut);
        const __m512 w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4 * s), lut);
        const __m512 w2 = _mm512_permutexvar_ps(_mm512_srli_epi32(v2, 4 * s), lut);
        const __m512 w3 = _mm512_permutexvar_ps(_mm512_srli_epi32(v3, 4 * s), lut);
        for (int i = 0; i < M; ++i) {
          const __m512 xs = _mm512_set1_ps(xg[i * a.x_stride + j * 8 + s]);
          ga[i][0] = _mm512_fmadd_ps(xs, w0, ga[i][0]);
          ga[i][1] = _mm512_fmadd_ps(xs, w1, ga[i][1]);
          ga[i][2] = _mm512_fmadd_ps(xs, w2, ga[i][2]);
          ga[i][3] = _mm512_fmadd_ps(xs, w3, ga[i][3]);
        }
      }
    }
    const uint16_t* sc = w.scales(a.panel, g);
    for (int q = 0; q < 4; ++q) {
      const __m512 s = scales16(sc + 16 * q);
      for (int i = 0; i < M; ++i) acc[i][q] = _mm512_fmadd_ps(ga[i][q], s, acc[i][q]);
    }
  }
  store_panel<M>(a, acc);
}

// Dense panel rows: 64 consecutive elements of the stored type -> 4 zmm of floats.
template <DType T>
MMFP4_TARGET_AVX512 inline __m512 load16(const uint8_t* p, int q) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p) + 16 * q);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p) + q));
  } else {
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p) + q));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
}

template <int M, DType T>
MMFP4_TARGET_AVX512 void fused_dense(const FusedArgs& a) {
  const PackedWeight& w = *a.w;
  constexpr int64_t es = T == DType::F32 ? 4 : 2;
  const uint8_t* p = w.panel(a.panel);
  __m512 acc[M][4];
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < 4; ++q) acc[i][q] = _mm512_setzero_ps();
  for (int64_t k = 0; k < w.k; ++k) {
    const uint8_t* pk = p + k * kPanelRows * es;
    const __m512 w0 = load16<T>(pk, 0), w1 = load16<T>(pk, 1), w2 = load16<T>(pk, 2), w3 = load16<T>(pk, 3);
    for (int i = 0; i < M; ++i) {
      const __m512 xs = _mm512_set1_ps(a.x[i * a.x_stride + k]);
      acc[i][0] = _mm512_fmadd_ps(xs, w0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(xs, w1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(xs, w2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(xs, w3, acc[i][3]);
    }
  }
  store_panel<M>(a, acc);
}

template <int M>
MMFP4_TARGET_AVX512 void fused_m(const FusedArgs& a) {
  if (a.w->mmfp4()) return fused_mmfp4<M>(a);
  switch (a.w->dtype) {
    case DType::F32: return fused_dense<M, DType::F32>(a);
    case DType::F16: return fused_dense<M, DType::F16>(a);
    case DType::BF16: return fused_dense<M, DType::BF16>(a);
    default: MMFP4_ASSERT(false && "dense weights are F32, F16 or BF16");
  }
}

constexpr int kNR = 32;

MMFP4_TARGET_AVX512 void expand(const PackedWeight& w, int64_t panel, int c0, int64_t k0, int64_t k1, float* b,
                                float* s) {
  if (w.mmfp4()) {
    const __m512 lut = _mm512_load_ps(kE2M1x25);
    const int64_t kwg = w.group / 8;
    for (int64_t g = k0 / w.group; g < k1 / w.group; ++g) {
      const uint32_t* codes = w.codes(panel, g) + c0;
      const uint16_t* sc = w.scales(panel, g) + c0;
      float* sg = s + (g - k0 / w.group) * kNR;
      _mm512_store_ps(sg, scales16(sc));
      _mm512_store_ps(sg + 16, scales16(sc + 16));
      for (int64_t j = 0; j < kwg; ++j) {
        const __m512i v0 = _mm512_load_si512(codes + j * kPanelRows), v1 = _mm512_load_si512(codes + j * kPanelRows + 16);
        float* bj = b + ((g * w.group + j * 8) - k0) * kNR;
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          _mm512_store_ps(bj + q * kNR, _mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4 * q), lut));
          _mm512_store_ps(bj + q * kNR + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4 * q), lut));
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
    switch (w.dtype) {
      case DType::F32:
        _mm512_store_ps(bk, load16<DType::F32>(pk, 0));
        _mm512_store_ps(bk + 16, load16<DType::F32>(pk, 1));
        break;
      case DType::F16:
        _mm512_store_ps(bk, load16<DType::F16>(pk, 0));
        _mm512_store_ps(bk + 16, load16<DType::F16>(pk, 1));
        break;
      default:
        _mm512_store_ps(bk, load16<DType::BF16>(pk, 0));
        _mm512_store_ps(bk + 16, load16<DType::BF16>(pk, 1));
        break;
    }
  }
}


// 16 rows per lane group; q is pre-multiplied by each row's scale of the group (the weight itself is c * 2^25).
// NQ query rows share every expanded weight vector (prefill: half the expansion work per row).
template <int NQ>
MMFP4_TARGET_AVX512 void absorb_t(const PackedWeight& w, int64_t row0, int64_t rows, const float* q, int64_t q_stride,
                                  float* out, int64_t out_stride) {
  const __m512 lut = _mm512_load_ps(kE2M1x25);
  const int64_t chunks = rows / 16, kwg = w.group / 8;
  constexpr int kMaxChunks = 64;  // rows <= 1024 per call (the driver checks)
  alignas(64) float qs[NQ][kMaxChunks][16];
  for (int64_t g = 0; g < w.k / w.group; ++g) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r = row0 + 16 * c;
      const __m512 sc = scales16(w.scales(r / kPanelRows, g) + r % kPanelRows);
      for (int t = 0; t < NQ; ++t) _mm512_store_ps(qs[t][c], _mm512_mul_ps(_mm512_loadu_ps(q + t * q_stride + 16 * c), sc));
    }
    for (int64_t j = 0; j < kwg; ++j) {
      __m512 acc[NQ][8];
      for (int t = 0; t < NQ; ++t)
        for (int s = 0; s < 8; ++s) acc[t][s] = _mm512_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t r = row0 + 16 * c;
        const __m512i v = _mm512_load_si512(w.codes(r / kPanelRows, g) + j * kPanelRows + r % kPanelRows);
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
          const __m512 wv = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * s), lut);
          for (int t = 0; t < NQ; ++t) acc[t][s] = _mm512_fmadd_ps(_mm512_load_ps(qs[t][c]), wv, acc[t][s]);
        }
      }
      for (int t = 0; t < NQ; ++t) {
        __m256 h[8];
        for (int s = 0; s < 8; ++s)
          h[s] = _mm256_add_ps(_mm512_castps512_ps256(acc[t][s]), _mm512_extractf32x8_ps(acc[t][s], 1));
        _mm256_storeu_ps(out + t * out_stride + (g * kwg + j) * 8, hsum8x8(h));
      }
    }
  }
}

MMFP4_TARGET_AVX512 void absorb(const PackedWeight& w, int64_t row0, int64_t rows, const float* q, int64_t q_stride,
                                int nq, float* out, int64_t out_stride) {
  if (nq == 2) return absorb_t<2>(w, row0, rows, q, q_stride, out, out_stride);
  MMFP4_ASSERT(nq == 1);
  absorb_t<1>(w, row0, rows, q, q_stride, out, out_stride);
}

}  // namespace

void fill_kernels_avx512(CpuKernels& k) {
  k.absorb_lanes = 16;
  k.absorb_max_q = 2;
  k.absorb = absorb;
  k.isa = CpuIsa::Avx512;
  k.fused_max_rows = 128;
  k.nr = kNR;
  k.fused = fused_any<fused_m<1>, fused_m<2>, fused_m<3>, fused_m<4>>;
  k.expand = expand;
  k.tile = tile_any<V16>;
}

}  // namespace mmfp4
