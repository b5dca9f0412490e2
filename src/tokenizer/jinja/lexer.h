// Splits a template into text and tag tokens the way Jinja2's lexer does under transformers' settings
// (trim_blocks, lstrip_blocks, keep_trailing_newline=False): newlines are normalized to \n, one trailing newline
// is dropped, `{%-`/`-%}` strip whitespace, `+` disables lstrip/trim, comments vanish, `{% raw %}` is text,
// and end markers inside open brackets do not close a tag ({{ {'a': {'b': 1}} }}).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/error.h"

namespace mmfp4::jinja {

enum class Tok : uint8_t {
  Text,        // text: the data
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,        // text: identifier
  String,      // text: decoded value
  Int,         // ival
  Float,       // fval
  Op,          // text: operator, e.g. "==", "(", "|"
  Eof,
};

struct Token {
  Tok type = Tok::Eof;
  std::string text;
  int64_t ival = 0;
  double fval = 0;
  Loc loc;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws TemplateError (Syntax) naming `name`, line and column for malformed input (invalid UTF-8, unclosed tag,
// comment or string, unbalanced brackets, an unexpected character).
std::vector<Token> tokenize(std::string_view source, const std::string& name, const LexOptions& opt = {});

// Human-readable description of a token for error messages: "'}}'", "name 'foo'", "end of template".
std::string describe(const Token& t);

}  // namespace mmfp4::jinja
