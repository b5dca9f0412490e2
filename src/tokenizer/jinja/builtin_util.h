// Helpers shared by the builtin filters, tests and methods: Jinja's attribute getters (map(attribute='a.b')),
// case folding for sorting, Python's stable sorted(), and argument conversions with Python's error wording.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/python_ops.h"
#include "tokenizer/jinja/renderer.h"

namespace mmfp4::jinja {

// Jinja's make_attrgetter: "a.b.0" walks item lookups (getitem, so dict keys work); `fallback` replaces an
// Undefined result when given.
Value attr_path(const Value& item, const Value& attribute, const Value* fallback = nullptr);
Value ignore_case(const Value& v);  // lower-cases strings, other values unchanged

// Python sorted(items, key=key, reverse=reverse): stable, and reverse keeps equal items in their original order.
void sort_by_key(std::vector<Value>& items, const std::function<Value(const Value&)>& key, bool reverse);

int64_t to_index(const Value& v, const char* what);  // an int argument ("'str' object cannot be interpreted...")
std::string str_arg(const Value& v, const char* what);  // a str argument
// Python's hash-based membership for unique/set semantics: throws for unhashable values.
void require_hashable_value(const Value& v);

// Python's dict.update(mapping_or_pairs, **kwargs), shared by dict(), namespace() and d.update().
void dict_update(DictData& d, const Args& args, const char* what);

// Filters and methods implemented across files and registered in filters.cpp / methods.cpp.
Value filter_tojson(Renderer& r, const Value& v, Args& args);

}  // namespace mmfp4::jinja
