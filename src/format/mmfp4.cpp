#include "format/mmfp4.h"

#include "core/half.h"

namespace mmfp4 {

void mmfp4_pack(const uint8_t* codes, int64_t k, uint32_t* words) {
  for (int64_t w = 0; w < k / kCodesPerWord; ++w) {
    uint32_t v = 0;
    for (int j = 0; j < kCodesPerWord; ++j) v |= uint32_t(codes[w * kCodesPerWord + j] & 0xF) << (4 * j);
    words[w] = v;
  }
}

void mmfp4_unpack(const uint32_t* words, int64_t k, uint8_t* codes) {
  for (int64_t i = 0; i < k; ++i) codes[i] = uint8_t(mmfp4_code(words, i));
}

void mmfp4_dequantize_row(const uint32_t* words, const uint16_t* scales, int64_t k_stored, int group_size,
                          float* out) {
  for (int64_t i = 0; i < k_stored; ++i) out[i] = kE2M1[mmfp4_code(words, i)] * f16_to_f32(scales[i / group_size]);
}

void mmfp4_code_histogram(const uint32_t* words, int64_t n_words, int64_t hist[16]) {
  for (int c = 0; c < 16; ++c) hist[c] = 0;
  for (int64_t w = 0; w < n_words; ++w)
    for (int j = 0; j < kCodesPerWord; ++j) ++hist[(words[w] >> (4 * j)) & 0xF];
}

}  // namespace mmfp4
