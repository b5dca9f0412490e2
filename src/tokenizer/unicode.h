// Unicode services the tokenizer needs beyond UTF-8 handling, backed by ICU: normalization forms, lowercase
// mapping, and the character classes Hugging Face's Rust code tests with `char` methods. Each function states the
// Rust method it reproduces, since the reference ids come from that library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mmfp4::unicode {

enum class NormForm { NFC, NFD, NFKC, NFKD };

// The normalization form of valid UTF-8 text (ASCII text is returned as is without calling ICU).
std::string normalize(std::string_view text, NormForm form);

// Rust's per-char `char::to_lowercase` (full mappings such as U+0130 -> "i\u0307", no context: a final sigma
// stays U+03C3), applied to every code point of valid UTF-8 text.
std::string lowercase(std::string_view text);

bool is_whitespace(uint32_t cp);      // char::is_whitespace: the White_Space property
bool is_numeric(uint32_t cp);         // char::is_numeric: general category Nd, Nl or No
bool is_punctuation(uint32_t cp);     // ASCII punctuation or general category P* (the `Punctuation` pre-tokenizer)
bool is_combining_mark(uint32_t cp);  // general category M* (the `StripAccents` normalizer)
// The Rust `regex` crate's Unicode \w: Alphabetic, M*, Nd, Pc and Join_Control (used by added tokens'
// `single_word` and by the `Whitespace` pre-tokenizer).
bool is_word(uint32_t cp);

}  // namespace mmfp4::unicode
