#include "format/hadamard.h"

#include <vector>

#include "core/error.h"

namespace mmfp4 {

void hadamard_rotate_exact(const float* in, float* out, int64_t n, int b) {
  MMFP4_ASSERT(hadamard_block_valid(b) && n % b == 0);
  int log2b = 0;
  while ((1 << log2b) < b) ++log2b;
  // b = 4^j: 1/sqrt(b) = 2^-j, so scaling the exact sum is exact and the float conversion is the only rounding.
  const bool power_of_4 = log2b % 2 == 0;
  const long double scale = power_of_4 ? std::ldexp(1.0L, -log2b / 2) : 1.0L;
  const long double root = std::sqrt(static_cast<long double>(b));
  std::vector<long double> v(static_cast<size_t>(b));  // one block [b]
  for (int64_t base = 0; base < n; base += b) {
    for (int i = 0; i < b; ++i) v[size_t(i)] = in[base + i];
    hadamard_butterflies(v.data(), b);
    for (int i = 0; i < b; ++i)
      out[base + i] = power_of_4 ? float(v[size_t(i)] * scale) : float(v[size_t(i)] / root);
  }
}

}  // namespace mmfp4
