// UTF-8 helpers for the template interpreter. Python strings are sequences of code points, so lengths, indexes,
// slices and iteration in templates count code points, not bytes; these helpers do that on our UTF-8 strings.
// Case mapping and whitespace follow Python's str methods for the scripts chat templates meet (ASCII, Latin-1,
// Greek, Cyrillic); other characters have no case here (documented in docs/chat_templates.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/utf8.h"

namespace mmfp4::jinja::utf8 {

// Decodes the code point at s[i] and advances i. Unlike mmfp4::utf8::next this checks every byte: an invalid
// one decodes as itself (one byte), so a value built from unchecked bytes can never make us read past the end.
uint32_t next(std::string_view s, size_t& i);
inline void append(std::string& out, uint32_t cp) { mmfp4::utf8::append(out, cp); }
// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
inline size_t find_invalid(std::string_view s) {
  size_t n = mmfp4::utf8::valid_prefix(s);
  return n == s.size() ? std::string_view::npos : n;
}

bool is_ascii(std::string_view s);
inline size_t length(std::string_view s) { return mmfp4::utf8::count_chars(s); }  // in code points
// Byte offsets of every code point plus s.size() at the end (size = length + 1).
std::vector<size_t> offsets(std::string_view s);
std::vector<std::string> chars(std::string_view s);

// Python str.isspace() for one code point.
bool is_space(uint32_t cp);
bool is_alpha(uint32_t cp);  // letters of the scripts above (and any non-ASCII code point in a word class)
bool is_digit(uint32_t cp);
bool is_upper(uint32_t cp);
bool is_lower(uint32_t cp);
uint32_t to_upper(uint32_t cp);
uint32_t to_lower(uint32_t cp);

std::string upper(std::string_view s);  // Python str.upper (ß -> SS)
std::string lower(std::string_view s);
std::string capitalize(std::string_view s);  // first upper, rest lower
std::string title(std::string_view s);       // Python str.title: upper after any uncased character
std::string swapcase(std::string_view s);

// Python str.strip/lstrip/rstrip: chars == nullptr strips whitespace, else any code point of *chars.
std::string_view strip(std::string_view s, const std::string* chars, bool left, bool right);

}  // namespace mmfp4::jinja::utf8
