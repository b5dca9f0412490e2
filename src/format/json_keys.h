// Duplicate keys in untrusted JSON headers. Our JSON parser keeps the last of two equal keys, as Python does; a
// safetensors header or an index weight_map with a name twice is a corrupt file, so we look at the raw text.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mmfp4 {

// `text` must already have parsed as JSON (it is not re-validated here). When its top-level value is an object,
// returns the first key that appears a second time (escapes decoded, so "a" and "\u0061" are the same key); for an
// object found under `member` (e.g. "weight_map"), looks one level down instead. std::nullopt when every key is
// unique or the value is not an object.
std::optional<std::string> find_duplicate_key(std::string_view text, std::string_view member = {});

}  // namespace mmfp4
