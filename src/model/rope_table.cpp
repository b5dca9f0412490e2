#include "model/rope_table.h"

#include <cmath>

namespace mmfp4 {

HostRopeTable build_rope_table(const RopeConfig& rope, int64_t max_positions) {
  HostRopeTable t;
  t.dim = rope.dim;
  t.max_positions = max_positions;
  const int64_t half = rope.dim / 2;
  const std::vector<float> inv = rope.inv_freq();
  const float scale = rope.cos_sin_scale();
  t.cos.resize(size_t(max_positions * half));
  t.sin.resize(size_t(max_positions * half));
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const float a = float(p) * inv[size_t(i)];
      t.cos[size_t(p * half + i)] = float(std::cos(double(a))) * scale;
      t.sin[size_t(p * half + i)] = float(std::sin(double(a))) * scale;
    }
  }
  return t;
}

}  // namespace mmfp4
