// The normalized Sylvester Hadamard transform applied block by block along a row (docs/format.md, "Hadamard
// rotation"): for each block of b consecutive values, x[blk] <- x[blk] · H_b with H_b[i][j] = (-1)^popcount(i & j)
// / sqrt(b). H_b is symmetric and orthonormal, so the same transform rotates (W' = W H) and un-rotates (W = W' H),
// and rotating activations (H x) makes W x = W' (H x).
#pragma once

#include <cmath>
#include <cstdint>

namespace mmfp4 {

// A valid block size: a power of two in [2, 2^16].
inline bool hadamard_block_valid(int64_t b) { return b >= 2 && b <= (1 << 16) && (b & (b - 1)) == 0; }

// k padded up to a multiple of the block (k itself when b == 0, i.e. no rotation).
inline int64_t hadamard_padded(int64_t k, int64_t b) { return b > 0 ? (k + b - 1) / b * b : k; }

// The unnormalized Walsh-Hadamard butterflies on one block v [b]: log2(b) stages of (a, c) -> (a + c, a - c).
template <typename T>
void hadamard_butterflies(T* v, int b) {
  for (int h = 1; h < b; h *= 2)
    for (int i = 0; i < b; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        T a = v[j], c = v[j + h];
        v[j] = a + c;
        v[j + h] = a - c;
      }
}

// Fast Walsh-Hadamard transform in place over each block of b values of x [n] (n a multiple of b), normalized by
// 1/sqrt(b). Rounds at every stage in T; the quantizer uses hadamard_rotate_exact instead.
template <typename T>
void hadamard_transform(T* x, int64_t n, int b) {
  const T norm = T(1) / std::sqrt(T(b));
  for (int64_t base = 0; base < n; base += b) {
    hadamard_butterflies(x + base, b);
    for (int i = 0; i < b; ++i) x[base + i] *= norm;
  }
}

// The rotation the quantizer stores: out[n] = fl32(in[n] · H_b) block by block, each value the exactly computed
// product rounded once to float32. The butterflies run in long double (64-bit significand at least), where the
// sums of up to 2^16 F16 values are exact, and for b a power of 4 the normalization is an exact power of two; other
// block sizes round the exact sum divided by sqrt(b) to 64 bits before the final float rounding. A float32
// rotation instead would flip codes and scales on some blocks (docs/format.md).
void hadamard_rotate_exact(const float* in, float* out, int64_t n, int b);

}  // namespace mmfp4
