// The sampler chain, applied to one row of logits in this order (as transformers' logits processors):
// repetition / presence / frequency penalties -> temperature -> top-k -> top-p -> min-p -> draw.
// temperature 0 means greedy (argmax, ties to the lowest id). Draws come from a per-sequence generator seeded by
// `seed`, so a seed reproduces a sequence exactly whatever else runs in the batch.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/json.h"
#include "mmfp4/sampling.h"

namespace mmfp4 {

// Defaults from a model's generation_config.json (do_sample, temperature, top_k, top_p, min_p,
// repetition_penalty); absent fields keep the current values. transformers samples only when do_sample is true.
void apply_generation_config(SamplingParams& p, const json::Value& gen);

class Sampler {
 public:
  Sampler(const SamplingParams& p, int64_t vocab);
  // Picks the next token from logits [vocab] (modified in place). `history` is the prompt + generated ids that
  // the penalties look at.
  int32_t sample(float* logits, const std::vector<int32_t>& history);
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // reused buffer
  std::vector<int32_t> counts_;
};

// Argmax, ties to the lowest index.
int32_t argmax(const float* v, int64_t n);

// log(sum(exp(v))) computed stably; and the log-probability of `id`.
double log_softmax_at(const float* v, int64_t n, int32_t id);

}  // namespace mmfp4
