// Sampling parameters of a request (public API). See src/sampling/sampler.h for the order they apply in.
#pragma once

#include <cstdint>

namespace mmfp4 {

struct SamplingParams {
  float temperature = 0.0f;         // 0: greedy (argmax, ties to the lowest id)
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off (transformers semantics: divide positive logits, multiply negative ones)
  float presence_penalty = 0.0f;    // OpenAI semantics, in [-2, 2]
  float frequency_penalty = 0.0f;   // OpenAI semantics, in [-2, 2]
  uint64_t seed = 0;                // the per-request generator's seed: the same seed gives the same text

  // Throws mmfp4::Error naming the field when a value is out of range.
  void validate() const;
  bool greedy() const { return temperature <= 0.0f; }
};

}  // namespace mmfp4
