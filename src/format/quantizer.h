// The RTN (round-to-nearest) MMFP4 quantizer of docs/format.md, "Quantizing". It reproduces every code and scale of
// metal-marlin's RTN writer bit for bit; each rule below is needed for that (the tests plant the cases).
//
//   W      the float32 input: BF16 sources rounded to F16 first, F16/F32 as they are; when rotating, zero-padded to
//          k_stored = ceil(k / b) * b and rotated block-wise, exactly, with one final float32 rounding
//   s32    = fl32(fl32(max|W[n, group]| / 6) + fl32(1e-10))        two float32 roundings, in this order
//   scale  = f16(s32), round to nearest even (may underflow to 0: dequantization then gives zeros)
//   code   = the E2M1 magnitude nearest to |W| / s32, decided by comparing |W| with midpoint * s32 in float64
//            (exact), ties to the smaller magnitude; sign bit only on a non-zero magnitude (never -0, code 8)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mmfp4 {

class ThreadPool;

struct QuantizeOptions {
  int group_size = 128;    // G: inputs per scale, a multiple of 8 dividing k (and k_stored)
  int hadamard_block = 0;  // b: 0 = no rotation, else a power of two (metal-marlin's default is 64)
};

// A quantized [n, k] weight in the canonical layout.
struct QuantizedMatrix {
  int64_t n = 0, k = 0;
  int64_t k_stored = 0;            // k, or k padded to a multiple of hadamard_block
  int group_size = 0;
  int hadamard_block = 0;
  std::vector<uint32_t> codes;     // [n, k_stored / 8]
  std::vector<uint16_t> scales;    // [n, k_stored / group_size], F16 bits
};

// Why a weight with k inputs cannot be quantized with these options, or "" when it can: k % 8 == 0 and
// k % G == 0 (as metal-marlin requires, on the unpadded k), a valid block, and k_stored % G == 0.
std::string quantize_unsupported_reason(int64_t k, const QuantizeOptions& opt);

// The quantizer's float32 input for one source row: src [k] of dtype F32, F16 or BF16 -> out [k_stored].
// Throws mmfp4::Error naming `what` and the position for a NaN or infinite value, or a BF16 value beyond F16's range.
void quantizer_input_row(const void* src, DType dtype, int64_t k, int hadamard_block, float* out,
                         const std::string& what, int64_t row);

// RTN of one prepared row w [k_stored] -> words [k_stored / 8], scales [k_stored / group_size].
void quantize_row_rtn(const float* w, int64_t k_stored, int group_size, uint32_t* words, uint16_t* scales);

// Quantizes src [n, k] (row-major, dtype F32/F16/BF16). Throws mmfp4::Error naming `what` on unsupported options or
// bad values. Rows are spread over `pool` when one is given.
QuantizedMatrix quantize_rtn(const void* src, DType dtype, int64_t n, int64_t k, const QuantizeOptions& opt,
                             const std::string& what = "weight", ThreadPool* pool = nullptr);

}  // namespace mmfp4
