// UTF-8 helpers for the tokenizer: decoding one code point, validation, and the lossy conversion that Rust's
// String::from_utf8_lossy performs (Hugging Face's decoders use it, so our decode must replace invalid bytes
// exactly as it does: one U+FFFD per maximal ill-formed subpart).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mmfp4::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence that starts with byte b (1 for ASCII and for invalid lead bytes).
inline size_t seq_len(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xF0) return 4;
  if (b >= 0xE0) return 3;
  if (b >= 0xC0) return 2;
  return 1;
}

// Decodes the code point at s[i] of *valid* UTF-8 and advances i.
inline uint32_t next(std::string_view s, size_t& i) {
  uint8_t b = uint8_t(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  size_t n = seq_len(b);
  uint32_t cp = b & (0x7F >> n);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

// Appends the UTF-8 encoding of cp.
void append(std::string& out, uint32_t cp);
inline std::string encode(uint32_t cp) {
  std::string s;
  append(s, cp);
  return s;
}

// Number of bytes of the valid UTF-8 prefix of s (== s.size() when s is valid).
size_t valid_prefix(std::string_view s);
inline bool is_valid(std::string_view s) { return valid_prefix(s) == s.size(); }

// Rust's String::from_utf8_lossy: valid sequences are copied, each maximal ill-formed subpart becomes U+FFFD.
std::string lossy(std::string_view bytes);

// True when `bytes` does not end inside a sequence that more bytes could still complete, i.e. lossy(bytes + x)
// == lossy(bytes) + lossy(x) for any x. The streaming decoder only cuts there.
bool ends_on_boundary(std::string_view bytes);

// Number of code points in valid UTF-8.
size_t count_chars(std::string_view s);

}  // namespace mmfp4::utf8
