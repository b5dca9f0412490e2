// Random-weight MMFP4 checkpoints of any supported architecture (`mmfp4 synth`), written tensor by tensor so a
// full-size GLM-4.7-Flash (~16 GB) can be produced on any machine to measure speed and memory at the real size
// without downloading weights. Weights: uniformly random E2M1 codes with F16 group scales that give a standard
// deviation of ~0.02 (the usual initialiser), norms of 1, small router biases; embeddings and lm_head F16.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/json.h"

namespace mmfp4 {

struct SynthOptions {
  int64_t layers = 0;          // > 0: keep only the first N decoder layers (config rewritten accordingly)
  int group_size = 128;
  int hadamard_block = 0;      // > 0: mark quantized tensors as rotated with this block
  uint64_t seed = 1;
  int64_t shard_bytes = 4000000000;  // split into shards of about this size
  bool force = false;          // replace the contents of a non-empty destination folder
};

// The Hugging Face config.json of a named model ("glm-4.7-flash"); throws for an unknown name.
json::Value builtin_config(const std::string& name);

// Writes dst/{config.json, generation_config.json, quantization_config.json, model-*.safetensors, index}.
// `progress(done_bytes, total_bytes)` is called as data is written. Returns the bytes written.
int64_t synthesize_checkpoint(const json::Value& config, const std::string& dst, const SynthOptions& opt,
                              const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace mmfp4
