#include "tokenizer/jinja/builtin_util.h"

#include <algorithm>

#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja {

Value attr_path(const Value& item, const Value& attribute, const Value* fallback) {
  std::vector<Value> parts;
  if (attribute.is_string()) {
    const std::string& a = attribute.str();
    size_t start = 0;
    while (true) {
      size_t dot = a.find('.', start);
      std::string part = a.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits && part.size() < 18) parts.emplace_back(int64_t(std::stoll(part)));
      else parts.emplace_back(part);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  } else {
    parts.push_back(attribute);
  }
  Value cur = item;
  for (const Value& p : parts) {
    cur = get_item(cur, p);
    if (fallback && cur.is_undefined()) cur = *fallback;
  }
  return cur;
}

Value ignore_case(const Value& v) { return v.is_string() ? Value(utf8::lower(v.str())) : v; }

void sort_by_key(std::vector<Value>& items, const std::function<Value(const Value&)>& key, bool reverse) {
  std::vector<std::pair<Value, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(key(items[i]), i);
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
    return reverse ? less(b.first, a.first) : less(a.first, b.first);
  });
  std::vector<Value> out;
  out.reserve(items.size());
  for (const auto& k : keyed) out.push_back(items[k.second]);
  items = std::move(out);
}

int64_t to_index(const Value& v, const char* what) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  require_defined(v);
  runtime_fail(what, ": '", type_name(v), "' object cannot be interpreted as an integer");
}

std::string str_arg(const Value& v, const char* what) {
  if (v.is_string()) return v.str();
  require_defined(v);
  runtime_fail(what, " must be str, not ", type_name(v));
}

void dict_update(DictData& d, const Args& args, const char* what) {
  if (args.positional.size() > 1) runtime_fail(what, " expected at most 1 positional argument, got ", args.positional.size());
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict() || src.is_namespace()) {
      for (const auto& [k, v] : src.dict_data().entries()) d.set(k, v);
    } else {
      for (const Value& pair : iterate(src)) {
        std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2) runtime_fail("dictionary update sequence element has length ", kv.size(), "; 2 is required");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : args.keyword) d.set(Value(k), v);
}

void require_hashable_value(const Value& v) {
  if (v.is_list() || v.is_dict() || v.is_namespace()) runtime_fail("unhashable type: '", type_name(v), "'");
  if (v.is_tuple())
    for (const Value& x : v.items()) require_hashable_value(x);
}

}  // namespace mmfp4::jinja
