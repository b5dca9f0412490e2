#include "format/quantizer.h"

#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "format/hadamard.h"
#include "format/mmfp4.h"

namespace mmfp4 {

std::string quantize_unsupported_reason(int64_t k, const QuantizeOptions& opt) {
  const int G = opt.group_size;
  if (G <= 0 || G % 8 != 0) return cat("group size ", G, " is not a positive multiple of 8");
  if (opt.hadamard_block != 0 && !hadamard_block_valid(opt.hadamard_block))
    return cat("Hadamard block ", opt.hadamard_block, " is not a power of two in [2, 65536]");
  if (k <= 0) return cat("k = ", k, " inputs");
  if (k % 8 != 0) return cat("k = ", k, " is not a multiple of 8 (eight codes per word)");
  if (k % G != 0) return cat("k = ", k, " is not a multiple of the group size ", G);
  const int64_t ks = hadamard_padded(k, opt.hadamard_block);
  if (ks % G != 0)
    return cat("k padded to the Hadamard block, ", ks, ", is not a multiple of the group size ", G);
  return "";
}

void quantizer_input_row(const void* src, DType dtype, int64_t k, int hadamard_block, float* out,
                         const std::string& what, int64_t row) {
  const int64_t ks = hadamard_padded(k, hadamard_block);
  for (int64_t i = 0; i < k; ++i) {
    float v;
    switch (dtype) {
      case DType::F32: std::memcpy(&v, static_cast<const uint8_t*>(src) + 4 * i, 4); break;
      case DType::F16: v = f16_to_f32(static_cast<const uint16_t*>(src)[i]); break;
      case DType::BF16: {
        // metal-marlin converts BF16 weights to F16 before anything else; the F16 rounding is part of the format.
        float b = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
        v = f16_to_f32(f32_to_f16(b));
        if (std::isfinite(b) && !std::isfinite(v))
          fail(what, ": value ", b, " at [", row, ", ", i, "] is beyond the F16 range that BF16 weights are ",
               "rounded to before quantizing");
        break;
      }
      default: fail(what, ": cannot quantize dtype ", dtype_name(dtype), " (expected F32, F16 or BF16)");
    }
    if (!std::isfinite(v)) fail(what, ": non-finite value ", v, " at [", row, ", ", i, "]");
    out[i] = v;
  }
  for (int64_t i = k; i < ks; ++i) out[i] = 0.0f;  // zero padding to the Hadamard block
  if (hadamard_block > 0) hadamard_rotate_exact(out, out, ks, hadamard_block);
}

void quantize_row_rtn(const float* w, int64_t k_stored, int group_size, uint32_t* words, uint16_t* scales) {
  for (int64_t g = 0; g < k_stored / group_size; ++g) {
    const float* x = w + g * group_size;  // [group_size]
    float amax = 0.0f;
    for (int i = 0; i < group_size; ++i) amax = std::max(amax, std::fabs(x[i]));
    // Two float32 roundings, in this order, as metal-marlin's numpy float32 arithmetic does.
    float s32 = amax / 6.0f;
    s32 = s32 + 1e-10f;
    scales[g] = f32_to_f16(s32);
    // midpoint * s32 is exact in float64 (3-bit midpoints times a 24-bit scale), so comparing |w| with it decides
    // the nearest magnitude exactly; a quotient rounded to float32 would flip codes at several midpoints.
    double t[7];
    for (int m = 0; m < 7; ++m) t[m] = kE2M1Midpoints[m] * double(s32);
    for (int i = 0; i < group_size; i += kCodesPerWord) {
      uint32_t word = 0;
      for (int j = 0; j < kCodesPerWord; ++j) {
        const float v = x[i + j];
        const double a = std::fabs(double(v));
        uint32_t mag = 0;
        while (mag < 7 && a > t[mag]) ++mag;  // strictly greater: an exact tie stays with the smaller magnitude
        const uint32_t code = mag | (v < 0.0f && mag ? 8u : 0u);
        word |= code << (4 * j);
      }
      words[(g * group_size + i) / kCodesPerWord] = word;
    }
  }
}

QuantizedMatrix quantize_rtn(const void* src, DType dtype, int64_t n, int64_t k, const QuantizeOptions& opt,
                             const std::string& what, ThreadPool* pool) {
  if (std::string why = quantize_unsupported_reason(k, opt); !why.empty()) fail(what, ": cannot quantize: ", why);
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    fail(what, ": cannot quantize dtype ", dtype_name(dtype), " (expected F32, F16 or BF16)");
  QuantizedMatrix q;
  q.n = n;
  q.k = k;
  q.k_stored = hadamard_padded(k, opt.hadamard_block);
  q.group_size = opt.group_size;
  q.hadamard_block = opt.hadamard_block;
  const int64_t words_per_row = q.k_stored / kCodesPerWord, groups = q.k_stored / opt.group_size;
  q.codes.resize(size_t(n * words_per_row));
  q.scales.resize(size_t(n * groups));
  const size_t row_bytes = size_t(k) * dtype_size(dtype);

  // Errors thrown inside worker threads are carried back to the caller.
  std::mutex mu;
  std::exception_ptr error;
  auto rows = [&](int64_t r0, int64_t r1) {
    try {
      std::vector<float> w(static_cast<size_t>(q.k_stored));  // one prepared row [k_stored]
      for (int64_t r = r0; r < r1; ++r) {
        quantizer_input_row(static_cast<const uint8_t*>(src) + size_t(r) * row_bytes, dtype, k, opt.hadamard_block,
                            w.data(), what, r);
        quantize_row_rtn(w.data(), q.k_stored, opt.group_size, q.codes.data() + r * words_per_row,
                         q.scales.data() + r * groups);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
    }
  };
  if (pool && n > 1)
    pool->parallel_for(n, 1, [&](int64_t b, int64_t e, int) { rows(b, e); });
  else
    rows(0, n);
  if (error) std::rethrow_exception(error);
  return q;
}

}  // namespace mmfp4
