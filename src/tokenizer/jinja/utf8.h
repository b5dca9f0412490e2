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

namespace mmfp4::jinja::utf8 {

// Decodes the code point at s[i] and advances i. An invalid byte decodes as itself (one byte, U+FFFD-free) so
// that malformed input never stalls a loop; templates are validated at parse time and JSON input by its parser.
uint32_t next(std::string_view s, size_t& i);
void append(std::string& out, uint32_t cp);
// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
size_t find_invalid(std::string_view s);

bool is_ascii(std::string_view s);
size_t length(std::string_view s);  // in code points
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
