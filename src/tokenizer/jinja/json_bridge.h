// Between our JSON DOM and template values: the render context comes in as JSON, and the tojson filter writes
// values back exactly as Python's json.dumps does with the options transformers' tojson passes through
// (ensure_ascii, indent, separators, sort_keys).
#pragma once

#include <optional>
#include <string>

#include "core/json.h"
#include "tokenizer/jinja/value.h"

namespace mmfp4::jinja {

Value from_json(const json::Value& v);

struct DumpsOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // None, or the indent text (Python's indent=2 is "  ")
  std::optional<std::string> item_separator, key_separator;  // None: Python's defaults for the indent mode
  bool sort_keys = false;
};

// Python json.dumps. Throws RuntimeFailure for values JSON cannot hold ("Object of type Undefined is not JSON
// serializable"), for dict keys of other types than str/int/float/bool/None, and for circular references.
std::string dumps(const Value& v, const DumpsOptions& opt);

}  // namespace mmfp4::jinja
