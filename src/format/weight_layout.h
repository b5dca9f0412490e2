// Internal to the format library: how load_weight turns each accepted MMFP4 layout (docs/format.md, "Variants")
// into the canonical one, and small conversions shared by the loader and the tools.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "format/safetensors.h"
#include "format/weight.h"

namespace mmfp4 {

// Dense row `row` of a [*, k] F32/F16/BF16 matrix at `data` (any alignment) -> out [k] float32.
void dense_row_to_f32(const void* data, DType dtype, int64_t row, int64_t k, float* out);

// t's data when it is aligned to `align` bytes, else a copy kept alive by `storage` (a file we did not write may
// place a tensor at any offset; typed loads need aligned pointers).
const void* aligned_view(const TensorInfo& t, size_t align, std::shared_ptr<const void>& storage);

// The value of a scalar I32/I64 sibling tensor ([1] or []), e.g. "P.group_size"; throws naming it otherwise.
int64_t read_scalar_int(const TensorInfo& t);

// The scales tensor of MMFP4 codes named `codes_name`: "P.scales", else "M.scales" or "M.weight_scale" where
// P = "M.weight". nullptr when none exists.
const TensorInfo* find_mmfp4_scales(const Checkpoint& ck, const std::string& codes_name);

// Fills w (name, n, k set) from U32 codes `codes` in either orientation, with its scales, group size and rotation,
// or throws mmfp4::Error naming the tensor, the file, the expected and the found shapes. Refuses codes that are
// not E2M1 (see is_e2m1_histogram).
void load_mmfp4(const Checkpoint& ck, const TensorInfo& codes, const QuantConfig& qc, HostWeight& w);

// The rule that tells E2M1 codes from the 4-bit codes of metal-marlin's scripts/finish_quantization.py (levels
// 0..9 of a uniform grid, 5 = zero): an E2M1 writer never emits code 8 (negative zero) and, on any real weight,
// uses the negative magnitudes 10..15. A histogram is "not E2M1" when code 8 is more than 1/1000 of all codes, or
// when codes 10..15 are all absent although at least 64 codes are non-zero. Applied only to weights without a
// `.group_size` sibling (the broken variant never writes one). `why` receives the reason when false.
bool is_e2m1_histogram(const int64_t hist[16], std::string* why);

}  // namespace mmfp4
