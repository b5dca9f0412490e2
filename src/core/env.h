// Environment variables (MMFP4_*): one parser for all of them. Unset or empty means "not given"; a value that is
// given but malformed is an error (mmfp4::Error) naming the variable, what it accepts and what it held, never
// silently ignored or read as a default.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

namespace mmfp4 {

// 0/1, false/true, off/on, no/yes (any case).
std::optional<bool> env_bool(const char* name);
// A decimal integer in [lo, hi], the whole value (no trailing characters).
std::optional<int64_t> env_int(const char* name, int64_t lo, int64_t hi);
// One of `choices`, exactly.
std::optional<std::string> env_choice(const char* name, std::initializer_list<const char*> choices);
// Comma-separated items, each one of `choices` (the value as given; "" when not given).
std::string env_list(const char* name, std::initializer_list<const char*> choices);

}  // namespace mmfp4
