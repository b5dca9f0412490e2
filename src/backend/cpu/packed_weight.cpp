#include "backend/cpu/packed_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace mmfp4 {

alignas(64) const float kE2M1x25[16] = {0, 0.5f * kCodeScale, 1 * kCodeScale, 1.5f * kCodeScale,
                                        2 * kCodeScale, 3 * kCodeScale, 4 * kCodeScale, 6 * kCodeScale,
                                        0, -0.5f * kCodeScale, -1 * kCodeScale, -1.5f * kCodeScale,
                                        -2 * kCodeScale, -3 * kCodeScale, -4 * kCodeScale, -6 * kCodeScale};
alignas(16) const int8_t kE2M1x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

PackedWeight packed_shape(const HostWeight& w) {
  PackedWeight p;
  p.format = w.format;
  p.n = w.n;
  p.panels = (w.n + kPanelRows - 1) / kPanelRows;
  if (w.format == WeightFormat::MMFP4) {
    MMFP4_ASSERT(w.group_size > 0 && w.group_size % 8 == 0 && w.k_stored % w.group_size == 0);
    p.k = w.k_stored;
    p.group = w.group_size;
    p.group_bytes = int64_t(w.group_size) / 8 * 256 + 128;
    p.panel_bytes = p.k / p.group * p.group_bytes;
  } else {
    p.k = w.k;
    p.dtype = w.dtype;
    p.panel_bytes = p.k * kPanelRows * int64_t(dtype_size(w.dtype));
  }
  return p;
}

void pack_panels(const HostWeight& w, const PackedWeight& p, int64_t p0, int64_t p1) {
  uint8_t* dst = const_cast<uint8_t*>(p.data);
  std::memset(dst + p0 * p.panel_bytes, 0, size_t((p1 - p0) * p.panel_bytes));  // padding rows: code 0, scale 0
  const int64_t r0 = p0 * kPanelRows, r1 = std::min(p.n, p1 * kPanelRows);
  if (p.mmfp4()) {
    const int64_t kw_row = p.k / 8, g_row = p.k / p.group, kwg = p.group / 8;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t panel = r / kPanelRows, lane = r % kPanelRows;
      for (int64_t g = 0; g < g_row; ++g) {
        auto* codes = const_cast<uint32_t*>(p.codes(panel, g));
        auto* scales = const_cast<uint16_t*>(p.scales(panel, g));
        for (int64_t j = 0; j < kwg; ++j) codes[j * kPanelRows + lane] = w.codes[r * kw_row + g * kwg + j];
        scales[lane] = w.scales[r * g_row + g];
      }
    }
    return;
  }
  const size_t es = dtype_size(w.dtype);
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t r = r0; r < r1; ++r) {
    uint8_t* panel = dst + (r / kPanelRows) * p.panel_bytes;
    const int64_t lane = r % kPanelRows;
    for (int64_t k = 0; k < p.k; ++k)
      std::memcpy(panel + (k * kPanelRows + lane) * int64_t(es), src + (r * p.k + k) * int64_t(es), es);
  }
}

PackedWeight pack_weight(const HostWeight& w, uint8_t* dst, ThreadPool* pool) {
  PackedWeight p = packed_shape(w);
  p.data = dst;
  if (pool && p.panels > 1) {
    pool->run(p.panels, [&](int64_t i, int) { pack_panels(w, p, i, i + 1); });
  } else {
    pack_panels(w, p, 0, p.panels);
  }
  return p;
}

namespace {

inline float dense_at(const PackedWeight& w, int64_t row, int64_t k) {
  const int64_t i = (row / kPanelRows) * (w.k * kPanelRows) + k * kPanelRows + row % kPanelRows;
  switch (w.dtype) {
    case DType::F32: return reinterpret_cast<const float*>(w.data)[i];
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(w.data)[i]);
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(w.data)[i]);
    default: MMFP4_ASSERT(false && "dense weights are F32, F16 or BF16");
  }
  return 0;
}

}  // namespace

void packed_row(const PackedWeight& w, int64_t row, float* out) {
  MMFP4_ASSERT(row >= 0 && row < w.n);
  if (!w.mmfp4()) {
    for (int64_t k = 0; k < w.k; ++k) out[k] = dense_at(w, row, k);
    return;
  }
  const int64_t panel = row / kPanelRows, lane = row % kPanelRows, kwg = w.group / 8;
  for (int64_t g = 0; g < w.k / w.group; ++g) {
    const uint32_t* codes = w.codes(panel, g);
    const float s = f16_to_f32(w.scales(panel, g)[lane]) * kInvCodeScale;
    for (int64_t j = 0; j < kwg; ++j) {
      const uint32_t word = codes[j * kPanelRows + lane];
      for (int b = 0; b < 8; ++b) out[(g * kwg + j) * 8 + b] = kE2M1x25[(word >> (4 * b)) & 0xF] * s;
    }
  }
}

void gemm_model(const float* x, int64_t x_stride, int64_t m, const PackedWeight& w, int64_t row0, int64_t rows,
                float* out, int64_t out_stride, bool accumulate) {
  for (int64_t j = 0; j < rows; ++j) {
    const int64_t row = row0 + j, panel = row / kPanelRows, lane = row % kPanelRows;
    for (int64_t i = 0; i < m; ++i) {
      const float* xr = x + i * x_stride;
      float acc = 0;
      if (w.mmfp4()) {
        const int64_t kwg = w.group / 8;
        for (int64_t g = 0; g < w.k / w.group; ++g) {
          const uint32_t* codes = w.codes(panel, g);
          float gacc = 0;
          for (int64_t jw = 0; jw < kwg; ++jw) {
            const uint32_t word = codes[jw * kPanelRows + lane];
            for (int b = 0; b < 8; ++b)
              gacc = std::fma(xr[(g * kwg + jw) * 8 + b], kE2M1x25[(word >> (4 * b)) & 0xF], gacc);
          }
          acc = std::fma(gacc, f16_to_f32(w.scales(panel, g)[lane]) * kInvCodeScale, acc);
        }
      } else {
        for (int64_t k = 0; k < w.k; ++k) acc = std::fma(xr[k], dense_at(w, row, k), acc);
      }
      float* o = out + i * out_stride + j;
      *o = accumulate ? *o + acc : acc;
    }
  }
}

}  // namespace mmfp4
