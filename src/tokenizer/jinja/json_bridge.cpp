#include "tokenizer/jinja/json_bridge.h"

#include <algorithm>
#include <cmath>

#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/python_ops.h"
#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja {

Value from_json(const json::Value& v) {
  switch (v.type()) {
    case json::Type::Null: return Value::none();
    case json::Type::Bool: return Value(v.as_bool());
    case json::Type::Int: return Value(v.as_int());
    case json::Type::Double: return Value(v.as_double());
    case json::Type::String: return Value(v.as_string());
    case json::Type::Array: {
      std::vector<Value> items;
      items.reserve(v.as_array().size());
      for (const auto& x : v.as_array()) items.push_back(from_json(x));
      return Value::list(std::move(items));
    }
    case json::Type::Object: {
      Value d = Value::dict();
      for (const auto& [k, x] : v.as_object()) d.dict_data().set(Value(k), from_json(x));
      return d;
    }
  }
  return Value::none();
}

namespace {

// Python's json string encoder: ", \\ and control characters escaped; with ensure_ascii everything outside
// printable ASCII (DEL included) becomes \uXXXX, with surrogate pairs above the BMP.
void write_py_string(std::string& out, std::string_view s, bool ensure_ascii) {
  static const char* hex = "0123456789abcdef";
  auto put_u = [&](uint32_t v) {
    out += "\\u";
    for (int sh = 12; sh >= 0; sh -= 4) out += hex[(v >> sh) & 15];
  };
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = utf8::next(s, i);
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
      if (cp >= 0x10000) {
        put_u(0xD800 + ((cp - 0x10000) >> 10));
        put_u(0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        put_u(cp);
      }
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += '"';
}

class Dumper {
 public:
  explicit Dumper(const DumpsOptions& o) : o_(o) {
    // Python: with an indent the default item separator loses its trailing space.
    item_sep_ = o.item_separator ? *o.item_separator : (o.indent ? "," : ", ");
    key_sep_ = o.key_separator ? *o.key_separator : ": ";
  }

  void write(const Value& v, int level) {
    switch (v.kind()) {
      case Kind::None: out += "null"; return;
      case Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
      case Kind::Int: out += std::to_string(v.as_int()); return;
      case Kind::Float: out += json::format_double(v.as_float(), true); return;
      case Kind::String: write_py_string(out, v.str(), o_.ensure_ascii); return;
      case Kind::List:
      case Kind::Tuple: {
        enter(v);
        const auto& items = v.items();
        if (items.empty()) {
          out += "[]";
        } else {
          out += '[';
          for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += item_sep_;
            newline(level + 1);
            write(items[i], level + 1);
          }
          newline(level);
          out += ']';
        }
        leave();
        return;
      }
      case Kind::Dict: {
        enter(v);
        std::vector<const std::pair<Value, Value>*> entries;
        for (const auto& e : v.dict_data().entries()) entries.push_back(&e);
        if (o_.sort_keys)
          std::stable_sort(entries.begin(), entries.end(),
                           [](const auto* a, const auto* b) { return less(a->first, b->first); });
        if (entries.empty()) {
          out += "{}";
        } else {
          out += '{';
          for (size_t i = 0; i < entries.size(); ++i) {
            if (i) out += item_sep_;
            newline(level + 1);
            write_py_string(out, key_text(entries[i]->first), o_.ensure_ascii);
            out += key_sep_;
            write(entries[i]->second, level + 1);
          }
          newline(level);
          out += '}';
        }
        leave();
        return;
      }
      default: runtime_fail("Object of type ", type_name(v), " is not JSON serializable");
    }
  }

  std::string out;

 private:
  void newline(int level) {
    if (!o_.indent) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += *o_.indent;
  }
  void enter(const Value& v) {
    if (std::find(stack_.begin(), stack_.end(), v.identity()) != stack_.end())
      runtime_fail("Circular reference detected");
    if (stack_.size() > 500) runtime_fail("maximum recursion depth exceeded while encoding a JSON object");
    stack_.push_back(v.identity());
  }
  void leave() { stack_.pop_back(); }

  // Python's json converts keys: str as is, numbers by repr, True/False/None as true/false/null.
  static std::string key_text(const Value& k) {
    switch (k.kind()) {
      case Kind::String: return k.str();
      case Kind::Int: return std::to_string(k.as_int());
      case Kind::Float: return json::format_double(k.as_float(), true);
      case Kind::Bool: return k.as_bool() ? "true" : "false";
      case Kind::None: return "null";
      default: runtime_fail("keys must be str, int, float, bool or None, not ", type_name(k));
    }
  }

  const DumpsOptions& o_;
  std::string item_sep_, key_sep_;
  std::vector<const void*> stack_;
};

}  // namespace

std::string dumps(const Value& v, const DumpsOptions& opt) {
  Dumper d(opt);
  d.write(v, 0);
  return std::move(d.out);
}

}  // namespace mmfp4::jinja
