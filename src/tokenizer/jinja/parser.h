// Builds the syntax tree from tokens with Jinja2's grammar and operator precedence. Unknown tags, filters and
// tests, and malformed expressions, are TemplateErrors (Syntax) naming line and column. Nesting is bounded so a
// hostile template cannot exhaust the stack of the parser or, later, of the evaluator.
#pragma once

#include <string>
#include <string_view>

#include "tokenizer/jinja/ast.h"

namespace mmfp4::jinja {

struct ParseLimits {
  int max_nesting = 128;     // statement blocks inside one another, and parser recursion for expressions
  int max_expr_depth = 256;  // height of one expression tree (a+a+a+... is as deep as it is long)
};

Body parse_template(std::string_view source, const std::string& name, const ParseLimits& limits = {});

}  // namespace mmfp4::jinja
