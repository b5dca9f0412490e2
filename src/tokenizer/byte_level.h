// GPT-2's byte-level alphabet: each of the 256 byte values is shown as one printable character (printable ASCII
// and Latin-1 map to themselves, the other 68 bytes to U+0100..U+0143), so that any byte string becomes a string
// of "characters" a BPE vocabulary can hold. The ByteLevel pre-tokenizer maps bytes to characters, the ByteLevel
// decoder maps them back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mmfp4::byte_level {

// The character (code point) byte b is shown as.
uint32_t char_of(uint8_t b);
// The UTF-8 of char_of(b).
std::string_view utf8_of(uint8_t b);
// The byte shown as code point cp, or -1 when cp is not in the alphabet.
int byte_of(uint32_t cp);

// Appends the byte-level string of `raw` to `out`.
void map_bytes(std::string_view raw, std::string& out);

}  // namespace mmfp4::byte_level
