// Quantizing a Hugging Face safetensors folder (BF16/F16/F32, sharded or not) into an MMFP4 folder, the way
// metal-marlin's writer does: the same tensors quantized, the same names, dtypes and shapes (docs/format.md).
// `mmfp4 quantize` is a thin front end over quantize_model().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "format/quantizer.h"

namespace mmfp4 {

// Why tensor `name` of `dtype` and `shape` is kept as it is, or "" when it is quantized. metal-marlin's rule: a
// 2-D F32/F16/BF16 tensor whose name contains "weight" and none of "embed", "norm", "lm_head", "output", "bias",
// "router" (case-insensitive), with k % 8 == 0 and k % G == 0 (and, rotated, k padded to the block a multiple of
// G). So every nn.Linear of the decoder is quantized, the MoE router "mlp.gate.weight" included.
std::string keep_reason(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                        const QuantizeOptions& opt);

struct QuantizeModelOptions {
  QuantizeOptions quant;   // group size, Hadamard block (0: no rotation, the default)
  bool force = false;      // write into a non-empty destination
  // Called after each source tensor: (tensors done, tensors in all, name). Optional.
  std::function<void(int64_t, int64_t, const std::string&)> progress;
};

struct QuantizeModelReport {
  int64_t quantized = 0, kept = 0;   // tensors of the source
  int64_t source_bytes = 0, output_bytes = 0;
  std::vector<std::string> shards;   // output files
  std::vector<std::string> copied;   // side files copied unchanged
  std::vector<std::string> kept_as_bf16;  // BF16 tensors not turned into F16 because a value exceeds F16's range
};

// Reads `src`, writes `dst`. Tensor by tensor: the source is memory-mapped and each output shard is streamed, so
// the model is never held in memory (only one shard's F16 scales, 1/64 of its weights, wait for their turn in the
// file). Throws mmfp4::Error naming the file or tensor on any problem.
QuantizeModelReport quantize_model(const std::string& src, const std::string& dst, const QuantizeModelOptions& opt);

}  // namespace mmfp4
