// Python string formatting used by templates: printf-style `"%s: %d" % (a, b)` (also the `format` filter) and
// a basic str.format ("{}", "{0}", "{name}", "{0!r}", simple specs such as "{:>10}" or "{:.2f}").
#pragma once

#include <string>

#include "tokenizer/jinja/value.h"

namespace mmfp4::jinja {

std::string percent_format(const std::string& fmt, const Value& args, size_t max_len);
std::string str_format(const std::string& fmt, const Args& args, size_t max_len);

}  // namespace mmfp4::jinja
