// Python semantics of template expressions: truthiness, str()/repr(), ==, ordering, arithmetic, `in`,
// iteration, item and attribute access, as Jinja2 evaluates them in the sandbox that transformers uses.
// Failures throw RuntimeFailure with Python's wording ("unsupported operand type(s) for +: 'int' and 'str'").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace mmfp4::jinja {

std::string type_name(const Value& v);  // Python type(v).__name__: str, int, dict, NoneType, ...
bool truthy(const Value& v);
std::string to_str(const Value& v);  // Python str(); Undefined -> ""
std::string repr(const Value& v);
std::string repr_string(std::string_view s);
std::string format_float(double d);  // Python repr(float): 1.0, 1e-05, inf, nan

bool equals(const Value& a, const Value& b);
// a < b etc. `op` is the operator for the error message.
bool less(const Value& a, const Value& b, const char* op = "<");
// Three-way compare used by sort/min/max: throws like Python when the types do not order.
int compare(const Value& a, const Value& b);

Value add(const Value& a, const Value& b, size_t max_len);
Value sub(const Value& a, const Value& b);
Value mul(const Value& a, const Value& b, size_t max_len);
Value truediv(const Value& a, const Value& b);
Value floordiv(const Value& a, const Value& b);
Value mod(const Value& a, const Value& b, size_t max_len);  // numbers, or printf-style str % args
Value power(const Value& a, const Value& b);
Value negate(const Value& a);
Value positive(const Value& a);

bool contains(const Value& container, const Value& item);
// Elements of an iterable (list/tuple items, dict keys, string characters); Undefined is empty. Throws for
// non-iterables ("'int' object is not iterable").
std::vector<Value> iterate(const Value& v);
std::optional<size_t> length(const Value& v);  // Python len(); nullopt when v has none

// Jinja's environment getattr / getitem: attribute first then item for `.name`, item first then attribute for
// `[key]`; a miss is an Undefined that remembers the object and name.
Value get_attr(const Value& obj, std::string_view name);
Value get_item(const Value& obj, const Value& key);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Throws Jinja's UndefinedError message when v is Undefined.
void require_defined(const Value& v);

// Python int(x)/float(x) conversions of strings ("12", " 3.5 ") for the int/float filters.
std::optional<int64_t> parse_int(std::string_view s, int base);
std::optional<double> parse_float(std::string_view s);

}  // namespace mmfp4::jinja
