#include "tokenizer/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/uniset.h>
#include <unicode/ustring.h>

#include <memory>

#include <string>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace mmfp4::unicode {

namespace {

// Corrections from ICU 72's answers to those of the Rust tests Hugging Face calls (generated; see the file).
struct CharRange {
  uint32_t first, last;
};
struct LowerFix {
  uint32_t cp;
  uint32_t to[3];  // zero-terminated
};
#include "tokenizer/unicode_char_delta.inc"

template <size_t N>
bool in(const CharRange (&ranges)[N], uint32_t cp) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ranges[mid].last < cp) lo = mid + 1;
    else hi = mid;
  }
  return lo < N && ranges[lo].first <= cp;
}

// ICU's answer `icu`, corrected by the add/remove tables.
template <size_t A, size_t R>
bool corrected(bool icu, const CharRange (&add)[A], const CharRange (&remove)[R], uint32_t cp) {
  return icu ? !in(remove, cp) : in(add, cp);
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (uint8_t(c) >= 0x80) return false;
  return true;
}

// Hugging Face normalizes with the Rust crate unicode-normalization-alignments, whose tables stop at Unicode 11:
// characters assigned later are left alone (ICU 72 would decompose ~130 of them under NFKC). ICU's filtered
// normalizer reproduces that: it normalizes only spans of characters of Unicode 11 or older.
const icu::Normalizer2& instance(NormForm form) {
  struct Instances {
    std::unique_ptr<icu::UnicodeSet> old_chars;
    std::unique_ptr<icu::FilteredNormalizer2> forms[4];
    Instances() {
      UErrorCode err = U_ZERO_ERROR;
      old_chars = std::make_unique<icu::UnicodeSet>(icu::UnicodeString(u"[:age=11.0:]"), err);
      if (U_FAILURE(err)) fail("tokenizer: ICU cannot build the Unicode 11 character set: ", u_errorName(err));
      old_chars->freeze();
      const icu::Normalizer2* base[4] = {icu::Normalizer2::getNFCInstance(err), icu::Normalizer2::getNFDInstance(err),
                                         icu::Normalizer2::getNFKCInstance(err), icu::Normalizer2::getNFKDInstance(err)};
      if (U_FAILURE(err)) fail("tokenizer: ICU normalizer unavailable: ", u_errorName(err));
      for (int i = 0; i < 4; ++i) forms[i] = std::make_unique<icu::FilteredNormalizer2>(*base[i], *old_chars);
    }
  };
  static const Instances inst;
  return *inst.forms[int(form)];
}

const LowerFix* lower_fix(uint32_t cp) {
  for (const LowerFix& f : kLowerFixes)
    if (f.cp == cp) return &f;
  return nullptr;
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
    if (const LowerFix* fix = lower_fix(cp)) {
      for (uint32_t c : fix->to)
        if (c) utf8::append(out, c);
      continue;
    }
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
  return corrected(u_hasBinaryProperty(UChar32(cp), UCHAR_WHITE_SPACE), kSpaceAdd, kSpaceRemove, cp);
}

bool is_numeric(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return corrected((U_GET_GC_MASK(UChar32(cp)) & U_GC_N_MASK) != 0, kNumericAdd, kNumericRemove, cp);
}

bool is_punctuation(uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
                        (cp >= 0x7B && cp <= 0x7E);
  return corrected((U_GET_GC_MASK(UChar32(cp)) & U_GC_P_MASK) != 0, kPunctAdd, kPunctRemove, cp);
}

bool is_combining_mark(uint32_t cp) {
  return corrected((U_GET_GC_MASK(UChar32(cp)) & U_GC_M_MASK) != 0, kMarkAdd, kMarkRemove, cp);
}

bool is_word(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  uint32_t gc = U_GET_GC_MASK(UChar32(cp));
  bool icu = (gc & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0 ||
             u_hasBinaryProperty(UChar32(cp), UCHAR_ALPHABETIC) || u_hasBinaryProperty(UChar32(cp), UCHAR_JOIN_CONTROL);
  return corrected(icu, kWordAdd, kWordRemove, cp);
}

}  // namespace mmfp4::unicode
