// The tensors an architecture needs, with the shapes its config implies. The loader and `mmfp4 inspect` both check a
// checkpoint against this list, so inspect validates exactly what loading would.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/checkpoint.h"
#include "model/config.h"

namespace mmfp4 {

enum class TensorRole {
  Linear,     // an nn.Linear weight [N = out, K = in]: dense (F32/F16/BF16) or MMFP4
  Embedding,  // [vocab, hidden]: dense or MMFP4
  Vector,     // norms, biases, router correction bias: dense 1-D
};

struct TensorSpec {
  std::string name;
  TensorRole role;
  std::vector<int64_t> shape;  // logical shape ([N, K] for Linear)
  bool optional = false;
};

// Throws mmfp4::Error for an unsupported model_type.
std::vector<TensorSpec> expected_tensors(const ModelConfig& c);

// Sets c.weight_prefix from what the checkpoint holds: "model." or, for multimodal wrappers,
// "model.language_model.".
void detect_weight_prefix(ModelConfig& c, const Checkpoint& ck);

}  // namespace mmfp4
