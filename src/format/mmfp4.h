// The MMFP4 codec (docs/format.md): 4-bit E2M1 codes, eight per little-endian u32 word (lowest nibble first), and
// one F16 scale per row and group of G consecutive inputs. The scalar reference every kernel is tested against.
#pragma once

#include <cstdint>

namespace mmfp4 {

// E2M1 value of each 4-bit code: bit 3 is the sign, bits 0-2 index {0, 0.5, 1, 1.5, 2, 3, 4, 6}. Code 8 is -0;
// our quantizer never writes it. Twice every value is an integer in [-12, 12] (exact int8 dot products).
inline constexpr float kE2M1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// Decision points between consecutive E2M1 magnitudes (the RTN quantizer compares |w| against midpoint * scale).
inline constexpr double kE2M1Midpoints[7] = {0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0};

inline constexpr int kCodesPerWord = 8;

// Code of input k in a row of packed words [k_stored / 8].
inline uint32_t mmfp4_code(const uint32_t* row_words, int64_t k) {
  return (row_words[k / kCodesPerWord] >> (4 * (k % kCodesPerWord))) & 0xFu;
}

// codes [k] (values 0..15) -> words [k / 8]; k must be a multiple of 8.
void mmfp4_pack(const uint8_t* codes, int64_t k, uint32_t* words);
// words [k / 8] -> codes [k].
void mmfp4_unpack(const uint32_t* words, int64_t k, uint8_t* codes);

// One stored row as float32, before any rotation is undone: out[k] = E2M1[code(k)] * f16(scales[k / group_size]).
// words [k_stored / 8], scales [k_stored / group_size] (F16 bits), out [k_stored].
void mmfp4_dequantize_row(const uint32_t* words, const uint16_t* scales, int64_t k_stored, int group_size,
                          float* out);

// Counts of each code over `n_words` words: hist[16]. The loader uses it to tell E2M1 codes from other 4-bit codes.
void mmfp4_code_histogram(const uint32_t* words, int64_t n_words, int64_t hist[16]);

}  // namespace mmfp4
