// Reading tokenizer.json fields with errors that name the file, the component and the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"

namespace mmfp4::jr {

inline const json::Value& field(const json::Value& obj, const char* key, const std::string& what) {
  const json::Value* v = obj.find(key);
  if (!v) fail(what, ": missing field \"", key, "\"");
  return *v;
}

inline const std::string& str(const json::Value& obj, const char* key, const std::string& what) {
  const json::Value& v = field(obj, key, what);
  if (!v.is_string()) fail(what, ": field \"", key, "\" must be a string, not ", json::Value::type_name(v.type()));
  return v.as_string();
}

inline std::string str_or(const json::Value& obj, const char* key, const std::string& def, const std::string& what) {
  const json::Value* v = obj.find(key);
  if (!v || v->is_null()) return def;
  if (!v->is_string()) fail(what, ": field \"", key, "\" must be a string, not ", json::Value::type_name(v->type()));
  return v->as_string();
}

inline bool boolean_or(const json::Value& obj, const char* key, bool def, const std::string& what) {
  const json::Value* v = obj.find(key);
  if (!v || v->is_null()) return def;
  if (!v->is_bool()) fail(what, ": field \"", key, "\" must be true or false, not ", json::Value::type_name(v->type()));
  return v->as_bool();
}

inline int64_t integer_or(const json::Value& obj, const char* key, int64_t def, const std::string& what) {
  const json::Value* v = obj.find(key);
  if (!v || v->is_null()) return def;
  if (!v->is_int()) fail(what, ": field \"", key, "\" must be an integer, not ", json::Value::type_name(v->type()));
  return v->as_int();
}

inline const json::Array& array(const json::Value& obj, const char* key, const std::string& what) {
  const json::Value& v = field(obj, key, what);
  if (!v.is_array()) fail(what, ": field \"", key, "\" must be an array, not ", json::Value::type_name(v.type()));
  return v.as_array();
}

// The "type" of a component object.
inline const std::string& type(const json::Value& obj, const std::string& what) {
  if (!obj.is_object()) fail(what, ": expected an object, not ", json::Value::type_name(obj.type()));
  return str(obj, "type", what);
}

// The components of a Sequence: make(item, what) for each item of obj[key] (null results are skipped); each item's
// errors name it as "<what>.<key>[i]".
template <typename Make>
auto component_list(const json::Value& obj, const char* key, const std::string& what, const std::string& w, Make make) {
  std::vector<decltype(make(obj, what))> parts;
  const json::Array& a = array(obj, key, w);
  for (size_t i = 0; i < a.size(); ++i)
    if (auto p = make(a[i], cat(what, ".", key, "[", i, "]"))) parts.push_back(std::move(p));
  return parts;
}

// A single character field (Metaspace "replacement", Strip "content", ...): exactly one code point.
uint32_t one_char(const json::Value& obj, const char* key, const std::string& what);

}  // namespace mmfp4::jr
