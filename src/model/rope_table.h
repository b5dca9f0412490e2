// Precomputed RoPE cos/sin tables for every position up to the configured context (computed at load: no lazy work).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace mmfp4 {

struct HostRopeTable {
  std::vector<float> cos, sin;  // [max_positions, dim / 2]
  int64_t max_positions = 0;
  int dim = 0;
};

// As transformers: angle = float32(pos * inv_freq[i]); cos/sin of it rounded to float32, times the YaRN factor.
HostRopeTable build_rope_table(const RopeConfig& rope, int64_t max_positions);

}  // namespace mmfp4
