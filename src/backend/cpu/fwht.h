// In-place normalized fast Walsh-Hadamard transform of one block of n = 2^k floats (Sylvester order):
// x <- H_n x with H_n[i][j] = (-1)^popcount(i & j) / sqrt(n). H_n is symmetric and orthonormal, so applying it
// twice is the identity. Used to rotate activations for Hadamard-rotated MMFP4 weights (docs/format.md).
#pragma once

#include <cmath>
#include <cstdint>

namespace mmfp4 {

inline void fwht_inplace(float* x, int64_t n) {
  for (int64_t len = 1; len < n; len <<= 1) {
    for (int64_t i = 0; i < n; i += len << 1) {
      for (int64_t j = i; j < i + len; ++j) {
        float a = x[j], b = x[j + len];
        x[j] = a + b;
        x[j + len] = a - b;
      }
    }
  }
  const float s = 1.0f / std::sqrt(float(n));
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace mmfp4
