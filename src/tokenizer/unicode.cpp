#include "tokenizer/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/ustring.h>

#include <string>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace mmfp4::unicode {

namespace {

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (uint8_t(c) >= 0x80) return false;
  return true;
}

const icu::Normalizer2& instance(NormForm form) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormForm::NFC: n = icu::Normalizer2::getNFCInstance(err); break;
    case NormForm::NFD: n = icu::Normalizer2::getNFDInstance(err); break;
    case NormForm::NFKC: n = icu::Normalizer2::getNFKCInstance(err); break;
    case NormForm::NFKD: n = icu::Normalizer2::getNFKDInstance(err); break;
  }
  if (U_FAILURE(err) || !n) fail("tokenizer: ICU normalizer unavailable: ", u_errorName(err));
  return *n;
}

}  // namespace

std::string normalize(std::string_view text, NormForm form) {
  // ASCII is invariant under every normalization form: the common case costs one scan.
  if (is_ascii(text)) return std::string(text);
  const icu::Normalizer2& n = instance(form);
  UErrorCode err = U_ZERO_ERROR;
  icu::StringPiece sp(text.data(), int32_t(text.size()));
  if (n.isNormalizedUTF8(sp, err) && U_SUCCESS(err)) return std::string(text);
  err = U_ZERO_ERROR;
  std::string out;
  icu::StringByteSink<std::string> sink(&out, int32_t(text.size()));
  n.normalizeUTF8(0, sp, sink, nullptr, err);
  if (U_FAILURE(err)) fail("tokenizer: Unicode normalization failed: ", u_errorName(err));
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    uint8_t b = uint8_t(text[i]);
    if (b < 0x80) {
      out += char(b >= 'A' && b <= 'Z' ? b + 32 : b);
      ++i;
      continue;
    }
    uint32_t cp = utf8::next(text, i);
    // One code point at a time, as Rust's char::to_lowercase: ICU's full mapping of a lone character has no
    // context, so U+03A3 maps to U+03C3 even at a word end (as in Rust).
    UChar src[2];
    int32_t src_len = 0;
    U16_APPEND_UNSAFE(src, src_len, cp);
    UChar dst[8];
    UErrorCode err = U_ZERO_ERROR;
    int32_t n = u_strToLower(dst, 8, src, src_len, "", &err);
    if (U_FAILURE(err) || n > 8) {
      utf8::append(out, cp);
      continue;
    }
    for (int32_t k = 0; k < n;) {
      UChar32 c;
      U16_NEXT(dst, k, n, c);
      utf8::append(out, uint32_t(c));
    }
  }
  return out;
}

bool is_whitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return u_hasBinaryProperty(UChar32(cp), UCHAR_WHITE_SPACE);
}

bool is_numeric(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return (U_GET_GC_MASK(UChar32(cp)) & U_GC_N_MASK) != 0;
}

bool is_punctuation(uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
                        (cp >= 0x7B && cp <= 0x7E);
  return (U_GET_GC_MASK(UChar32(cp)) & U_GC_P_MASK) != 0;
}

bool is_combining_mark(uint32_t cp) { return (U_GET_GC_MASK(UChar32(cp)) & U_GC_M_MASK) != 0; }

bool is_word(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  uint32_t gc = U_GET_GC_MASK(UChar32(cp));
  if (gc & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) return true;
  return u_hasBinaryProperty(UChar32(cp), UCHAR_ALPHABETIC) || u_hasBinaryProperty(UChar32(cp), UCHAR_JOIN_CONTROL);
}

}  // namespace mmfp4::unicode
