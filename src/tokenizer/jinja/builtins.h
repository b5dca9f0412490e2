// The builtin filters, tests, methods and globals of the interpreter, looked up by name. The parser resolves
// filters and tests when it reads them, so a template naming an unknown one fails at parse time as Jinja2 does.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"

namespace mmfp4::jinja {

struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Binds Args to a Python-style signature: positional arguments fill params in order, keywords by name.
// Errors (too many arguments, an unknown or repeated keyword) name the function as `what`.
class ArgBinder {
 public:
  ArgBinder(const Args& args, std::string_view what, std::initializer_list<const char*> params);
  bool given(size_t i) const { return given_[i]; }
  const Value& operator[](size_t i) const { return values_[i]; }  // Undefined when not given
  Value get(size_t i, Value fallback) const { return given_[i] ? values_[i] : std::move(fallback); }

 private:
  std::vector<Value> values_;
  std::vector<bool> given_;
};

FilterFn find_filter(std::string_view name);  // nullptr when unknown
TestFn find_test(std::string_view name);
// Names Jinja2 has but this interpreter does not implement, for a clearer error than "unknown".
bool is_unsupported_filter(std::string_view name);

// The method `name` of a str, list or dict value bound to it (Python's attribute lookup of methods).
bool find_method(const Value& self, std::string_view name, Value& out);
// Globals of the environment: range, dict, namespace, cycler, joiner, raise_exception, strftime_now.
bool find_global(std::string_view name, Value& out);

// Makes a callable host object from a plain function (used for globals and bound methods).
using NativeFn = Value (*)(Renderer&, const Value& self, Args& args);
Value make_function(std::string name, NativeFn fn, Value self = Value());

}  // namespace mmfp4::jinja
