#include "tokenizer/jinja/utf8.h"

#include <algorithm>

namespace mmfp4::jinja::utf8 {

uint32_t next(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (len == 0 || i + size_t(len) > s.size()) {
    ++i;
    return c;
  }
  uint32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + size_t(k)]);
    if ((cc & 0xC0) != 0x80) {
      ++i;
      return c;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += size_t(len);
  return cp;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

std::vector<size_t> offsets(std::string_view s) {
  std::vector<size_t> out;
  size_t i = 0;
  while (i < s.size()) {
    out.push_back(i);
    next(s, i);
  }
  out.push_back(s.size());
  return out;
}

std::vector<std::string> chars(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    next(s, i);
    out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

bool is_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Case pairs: Latin-1 (U+00C0..U+00DE <-> +0x20, except U+00D7), Greek (U+0391..U+03AB <-> +0x20, except U+03A2),
// Cyrillic (U+0410..U+042F <-> +0x20, U+0400..U+040F <-> +0x50). Latin Extended-A alternates upper/lower.
uint32_t to_upper(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 0x20;
  if (cp == 0xFF) return 0x178;
  if (cp == 0xB5) return 0x39C;
  if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 && cp != 0x17F) {
    bool odd_is_lower = !((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E));
    if (odd_is_lower ? (cp & 1) : !(cp & 1)) return cp - 1;
    return cp;
  }
  if (cp >= 0x3B1 && cp <= 0x3CB && cp != 0x3C2) return cp - 0x20;
  if (cp == 0x3C2) return 0x3A3;
  if (cp >= 0x430 && cp <= 0x44F) return cp - 0x20;
  if (cp >= 0x450 && cp <= 0x45F) return cp - 0x50;
  return cp;
}

uint32_t to_lower(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 && cp != 0x17F &&
      cp != 0x178) {
    bool odd_is_lower = !((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E));
    if (odd_is_lower ? !(cp & 1) : (cp & 1)) return cp + 1;
    return cp;
  }
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 0x20;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  return cp;
}

bool is_upper(uint32_t cp) { return to_lower(cp) != cp; }
bool is_lower(uint32_t cp) { return to_upper(cp) != cp || cp == 0xDF; }
bool is_alpha(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  return is_upper(cp) || is_lower(cp) || cp == 0xAA || cp == 0xBA;
}
bool is_digit(uint32_t cp) { return cp >= '0' && cp <= '9'; }

namespace {

template <typename F>
std::string map_cps(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  size_t idx = 0;
  bool prev_cased = false;
  while (i < s.size()) {
    uint32_t cp = next(s, i);
    f(out, cp, idx++, prev_cased);
    prev_cased = is_upper(cp) || is_lower(cp);
  }
  return out;
}

void put_upper(std::string& out, uint32_t cp) {
  if (cp == 0xDF) {
    out += "SS";  // Python: 'ß'.upper() == 'SS'
    return;
  }
  append(out, to_upper(cp));
}

}  // namespace

std::string upper(std::string_view s) {
  return map_cps(s, [](std::string& o, uint32_t cp, size_t, bool) { put_upper(o, cp); });
}
std::string lower(std::string_view s) {
  return map_cps(s, [](std::string& o, uint32_t cp, size_t, bool) { append(o, to_lower(cp)); });
}
std::string capitalize(std::string_view s) {
  return map_cps(s, [](std::string& o, uint32_t cp, size_t idx, bool) {
    if (idx == 0)
      put_upper(o, cp);
    else
      append(o, to_lower(cp));
  });
}
std::string title(std::string_view s) {
  return map_cps(s, [](std::string& o, uint32_t cp, size_t, bool prev_cased) {
    if (prev_cased)
      append(o, to_lower(cp));
    else
      put_upper(o, cp);
  });
}
std::string swapcase(std::string_view s) {
  return map_cps(s, [](std::string& o, uint32_t cp, size_t, bool) {
    if (is_upper(cp))
      append(o, to_lower(cp));
    else if (is_lower(cp))
      put_upper(o, cp);
    else
      append(o, cp);
  });
}

std::string_view strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<uint32_t> set;
  if (chars) {
    size_t i = 0;
    while (i < chars->size()) set.push_back(next(*chars, i));
  }
  auto strippable = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end() : is_space(cp);
  };
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      size_t j = begin;
      if (!strippable(next(s, j))) break;
      begin = j;
    }
  }
  if (right) {
    while (end > begin) {
      size_t j = end - 1;
      while (j > begin && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
      size_t k = j;
      if (!strippable(next(s, k))) break;
      end = j;
    }
  }
  return s.substr(begin, end - begin);
}

}  // namespace mmfp4::jinja::utf8
