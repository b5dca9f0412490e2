// Linear weights as the fast CPU kernels read them: the "P64" layout, built once at load (docs/cpu_kernels.md).
//
// Rows are taken 64 at a time ("panels"; the last one padded with zero rows). Inside a panel the weight is stored
// k-major, so that one step of k reads the 64 rows' values side by side: the kernels keep 64 outputs in vector
// registers (4 zmm or 8 ymm accumulator chains) and stream the panel front to back exactly once.
//
//   MMFP4, group size G, K = k_stored: a panel is K/G group blocks of G/8 * 256 + 128 bytes, each
//     codes  [G/8][64] u32   word [j][r] = the canonical word of row 64p + r, k-word g*G/8 + j (8 codes, low nibble
//                            first, as on disk); 256 bytes = 4 cache lines per k-word
//     scales [64] f16        scale of row 64p + r in group g
//   so weights and their scales arrive in one sequential stream (one hardware-prefetch stream per thread).
//   Dense (F32/F16/BF16): a panel is [K][64] elements of the stored type.
//
// The arithmetic every fast kernel implements, per output element (m, n), independent of how many rows are in
// the batch, of the ISA and of the path (fused small-M or packed large-M), so results are bit-identical across
// them (gemm_model() below is the plain-loop statement of it, and the tests hold every kernel to it bit for bit):
//   MMFP4:  acc = 0; for each group g: { gacc = 0; for k in g: gacc = fma(x[k], c[k] * 2^25, gacc);
//                                        acc = fma(gacc, s[g] * 2^-25, acc) }
//   dense:  acc = 0; for k: acc = fma(x[k], w[k], acc)
//   out = accumulate ? out + acc : acc
// c is the E2M1 value (code 8, "-0", is +0). The 2^25 factor is what the AVX2 path gets for free (it converts the
// int8 value 2c placed in the top byte of a 32-bit lane); powers of two are exact, so it changes no result.
#pragma once

#include <cstdint>
#include <memory>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "format/weight.h"

namespace mmfp4 {

constexpr int kPanelRows = 64;
constexpr float kCodeScale = 33554432.0f;            // 2^25: c as the kernels carry it
constexpr float kInvCodeScale = 1.0f / 33554432.0f;  // 2^-25: folded into every scale

// E2M1 code -> value * 2^25 (code 8 gives +0), and -> 2c as int8 (the AVX2 lookup table).
extern const float kE2M1x25[16];
extern const int8_t kE2M1x2[16];

struct PackedWeight {
  WeightFormat format = WeightFormat::Dense;
  DType dtype = DType::F32;   // dense element type
  int64_t n = 0;              // logical rows
  int64_t k = 0;              // stored columns (k_stored for MMFP4)
  int group = 0;              // MMFP4 group size
  int64_t panels = 0;         // ceil(n / 64)
  int64_t panel_bytes = 0;
  int64_t group_bytes = 0;    // MMFP4 group block: G/8 * 256 + 128
  const uint8_t* data = nullptr;

  const uint8_t* panel(int64_t p) const { return data + p * panel_bytes; }
  int64_t bytes() const { return panels * panel_bytes; }
  bool mmfp4() const { return format == WeightFormat::MMFP4; }
  // MMFP4: codes and scales of group g of panel p.
  const uint32_t* codes(int64_t p, int64_t g) const {
    return reinterpret_cast<const uint32_t*>(panel(p) + g * group_bytes);
  }
  const uint16_t* scales(int64_t p, int64_t g) const {
    return reinterpret_cast<const uint16_t*>(panel(p) + g * group_bytes + int64_t(group) / 8 * 256);
  }
};

// Shape of the packed form of `w` (data left null) and its size in bytes.
PackedWeight packed_shape(const HostWeight& w);
// Repacks w (canonical layout) into dst (packed_shape(w).bytes() bytes, 64-byte aligned), panels in parallel on
// `pool` if given; returns the view.
PackedWeight pack_weight(const HostWeight& w, uint8_t* dst, ThreadPool* pool = nullptr);

// Row `row` of the stored matrix (rotated domain, k columns), dequantized exactly as the kernels see it: c * s.
void packed_row(const PackedWeight& w, int64_t row, float* out);

// The kernels' arithmetic as plain loops (see the top of this file): out[i * out_stride + j] for rows
// i < m of x and weight rows row0 + j, j < rows.
void gemm_model(const float* x, int64_t x_stride, int64_t m, const PackedWeight& w, int64_t row0, int64_t rows,
                float* out, int64_t out_stride, bool accumulate);

}  // namespace mmfp4
