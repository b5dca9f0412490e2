#include "tokenizer/utf8.h"

namespace mmfp4::utf8 {

namespace {

enum class Scan { Valid, Invalid, Truncated };

// Scans the sequence at p[0..n) (n >= 1). Returns how many bytes it spans: the whole character when Valid, the
// maximal ill-formed subpart when Invalid (Unicode 3.9, table 3-7: the bytes that are a valid prefix, at least
// one), or every remaining byte when they are a valid prefix cut short by the end of the buffer (Truncated).
size_t scan(const uint8_t* p, size_t n, Scan& result) {
  uint8_t b = p[0];
  if (b < 0x80) {
    result = Scan::Valid;
    return 1;
  }
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    result = Scan::Invalid;
    return 1;
  }
  for (size_t k = 1; k < len; ++k) {
    if (k >= n) {
      result = Scan::Truncated;
      return k;
    }
    uint8_t c = p[k];
    uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) {
      result = Scan::Invalid;
      return k;
    }
  }
  result = Scan::Valid;
  return len;
}

}  // namespace

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

size_t valid_prefix(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    // ASCII runs dominate real text: skip them eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    Scan r;
    size_t len = scan(p + i, n - i, r);
    if (r != Scan::Valid) return i;
    i += len;
  }
  return n;
}

std::string lossy(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size();
  if (valid_prefix(bytes) == n) return std::string(bytes);
  std::string out;
  out.reserve(n + 8);
  size_t i = 0;
  while (i < n) {
    Scan r;
    size_t len = scan(p + i, n - i, r);
    if (r == Scan::Valid) {
      out.append(bytes.data() + i, len);
    } else {
      out += kReplacement;
    }
    i += len;
  }
  return out;
}

bool ends_on_boundary(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size();
  // Only the last (at most 3) bytes can start a truncated sequence; find the start of the last scan step by
  // scanning from a position that is surely a step boundary: just after the last ASCII byte before the tail, or 0.
  size_t start = n > 4 ? n - 4 : 0;
  while (start > 0 && p[start - 1] >= 0x80) --start;  // back to a step boundary (ASCII byte or buffer start)
  size_t i = start;
  while (i < n) {
    Scan r;
    size_t len = scan(p + i, n - i, r);
    if (r == Scan::Truncated) return false;
    i += len;
  }
  return true;
}

size_t count_chars(std::string_view s) {
  size_t c = 0;
  for (char ch : s) c += (uint8_t(ch) & 0xC0) != 0x80;
  return c;
}

}  // namespace mmfp4::utf8
