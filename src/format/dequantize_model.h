// Dequantizing an MMFP4 folder into a dense safetensors folder (F32 or BF16): rotation undone, padding dropped,
// every other file copied. Useful to users (any framework reads the result) and a test oracle: each weight is
// exactly HostWeight::dequantize() of the loaded tensor. `mmfp4 dequantize` is a thin front end over it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mmfp4 {

struct DequantizeModelOptions {
  DType dtype = DType::F32;  // F32 or BF16: every floating-point tensor of the output
  bool force = false;        // write into a non-empty destination
  // The logical [n, k] of weight `name`, when known (from config.json): a rotated weight's stored width may be
  // padded, and only the architecture knows k. Without it, k is the stored width. Optional.
  std::function<bool(const std::string& name, int64_t& n, int64_t& k)> logical_shape;
  // Called after each output tensor: (done, total, name). Optional.
  std::function<void(int64_t, int64_t, const std::string&)> progress;
};

struct DequantizeModelReport {
  int64_t dequantized = 0, converted = 0, copied = 0;  // MMFP4 weights; other float tensors; other tensors
  std::vector<std::string> shards, side_files;
};

// Throws mmfp4::Error naming the file or tensor on any problem.
DequantizeModelReport dequantize_model(const std::string& src, const std::string& dst,
                                       const DequantizeModelOptions& opt);

}  // namespace mmfp4
