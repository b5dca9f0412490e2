// The quantized-weight type: one linear weight W [n, k] (y = x W^T, as nn.Linear) as the loader hands it to a
// backend, in the canonical layout of docs/format.md whatever the checkpoint variant was. A weight knows its format,
// its group size and its rotation; the forward pass never branches on the file format (backends repack at load).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mmfp4 {

class Checkpoint;

enum class WeightFormat { Dense, MMFP4 };

struct HostWeight {
  std::string name;                 // checkpoint key, e.g. "model.layers.3.self_attn.q_a_proj.weight"
  WeightFormat format = WeightFormat::Dense;
  int64_t n = 0, k = 0;             // logical shape [out, in]

  // Dense: data [n, k] row-major, dtype F32, F16 or BF16.
  DType dtype = DType::F32;
  const void* data = nullptr;

  // MMFP4 (canonical): codes [n, k_stored / 8] u32, eight consecutive k per word, lowest nibble first;
  // scales [n, k_stored / group_size] f16 bits.
  const uint32_t* codes = nullptr;
  const uint16_t* scales = nullptr;
  int64_t k_stored = 0;             // k, or k rounded up to a multiple of hadamard_block when rotated
  int group_size = 0;
  int hadamard_block = 0;           // 0: not rotated; else W = W' . H_b block-wise along k (docs/format.md)

  // Owns converted copies (transposed variants); null when the pointers view the file mapping, which must then
  // outlive this weight.
  std::shared_ptr<const void> storage;

  bool rotated() const { return hadamard_block > 0; }
  // Bytes of the weight as stored (codes + scales, or dense data).
  int64_t stored_bytes() const;
  // Reference dequantization of row `row` of W (rotation undone, padding dropped): out[k] in float32.
  void dequantize_row(int64_t row, float* out) const;
  std::vector<float> dequantize() const;  // all of W [n, k], float32 (tests and tools only)
};

// What quantization_config.json says (advisory: per-tensor siblings are the truth). Absent file: all defaults.
struct QuantConfig {
  bool present = false;
  std::string format;               // "mmfp4_e2m1_marlin"
  int group_size = 128;
  bool use_hadamard = false;
  int hadamard_block_size = 64;
  static QuantConfig load(const std::string& dir);
};

// Loads linear weight `name` that the config says is [n, k]: dense F32/F16/BF16, or MMFP4 in either layout with any
// scale-key spelling (docs/format.md section "variants"); refuses the broken variant. Throws mmfp4::Error naming
// the file, the tensor, what was expected and what was found.
HostWeight load_weight(const Checkpoint& ck, const std::string& name, int64_t n, int64_t k, const QuantConfig& qc);

// The rows of `parts` one after another, [sum of n, k], named `name` (load-time weight surgery: two linears that read
// the same input become one product). False, and `out` untouched, unless every part has the same format, width,
// stored width, group size, rotation and dtype.
bool stack_rows(const std::vector<const HostWeight*>& parts, const std::string& name, HostWeight* out);

// True when `name` (or its MMFP4 form) exists in the checkpoint.
bool has_weight(const Checkpoint& ck, const std::string& name);

// A 1-D dense tensor (norm weight, bias, router correction bias) of length n, converted to float32.
std::vector<float> load_vector(const Checkpoint& ck, const std::string& name, int64_t n);

}  // namespace mmfp4
