// A small JSON DOM: parse untrusted text (depth-limited, errors with line and column), build values, and write them
// back (compact, indented or Python json.dumps-compatible). Objects keep insertion order, as Python dicts do,
// which chat templates and tokenizer vocabularies rely on; large objects get a hash index for lookup.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mmfp4::json {

enum class Type : uint8_t { Null, Bool, Int, Double, String, Array, Object };

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;

class Object {
 public:
  Object() = default;
  Object(const Object& o);
  Object& operator=(const Object& o);
  Object(Object&&) noexcept = default;
  Object& operator=(Object&&) noexcept = default;
  ~Object();
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(std::string key, Value v);  // replaces an existing key in place
  bool erase(std::string_view key);
  size_t size() const;
  bool empty() const;
  auto begin() const { return members_.begin(); }
  auto end() const { return members_.end(); }
  const std::vector<Member>& members() const { return members_; }
  // Appends without checking for an existing key (the parser checks duplicates itself).
  void append_unchecked(std::string key, Value v);

 private:
  void build_index() const;
  std::vector<Member> members_;
  mutable std::unique_ptr<std::unordered_map<std::string_view, uint32_t>> index_;  // only for large objects
  friend class Value;
};

class Value {
 public:
  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : type_(Type::Bool), b_(b) {}
  Value(int v) : type_(Type::Int), i_(v) {}
  Value(unsigned v) : type_(Type::Int), i_(v) {}
  Value(long v) : type_(Type::Int), i_(v) {}
  Value(long long v) : type_(Type::Int), i_(v) {}
  Value(unsigned long v) : type_(Type::Int), i_(int64_t(v)) {}
  Value(unsigned long long v) : type_(Type::Int), i_(int64_t(v)) {}
  Value(double v) : type_(Type::Double), d_(v) {}
  Value(float v) : type_(Type::Double), d_(v) {}
  Value(std::string s) : type_(Type::String), s_(std::make_unique<std::string>(std::move(s))) {}
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(Array a) : type_(Type::Array), a_(std::make_unique<Array>(std::move(a))) {}
  Value(Object o) : type_(Type::Object), o_(std::make_unique<Object>(std::move(o))) {}

  Value(const Value& o);
  Value& operator=(const Value& o);
  ~Value();
  Value(Value&&) noexcept = default;
  Value& operator=(Value&&) noexcept = default;

  static Value array() { return Value(Array{}); }
  static Value object() { return Value(Object{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_int() const { return type_ == Type::Int; }
  bool is_number() const { return type_ == Type::Int || type_ == Type::Double; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed access. These throw mmfp4::Error naming the expected and actual type.
  bool as_bool() const;
  int64_t as_int() const;     // an Int, or a Double with an integral value
  double as_double() const;   // Int or Double
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Object member lookup: nullptr when this is not an object or the key is absent.
  const Value* find(std::string_view key) const;
  // Object member or a shared null value.
  const Value& operator[](std::string_view key) const;
  const Value& operator[](size_t i) const { return as_array().at(i); }
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  size_t size() const;  // array or object size; 0 otherwise

  // Building.
  Value& set(std::string key, Value v);  // this must be an object (a null becomes one)
  Value& push_back(Value v);             // this must be an array (a null becomes one)

  bool operator==(const Value& o) const;

  static const char* type_name(Type t);

 private:
  Type type_ = Type::Null;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  // Copying a Value deep-copies (see the copy constructor); the pointers keep the object small.
  std::unique_ptr<std::string> s_;
  std::unique_ptr<Array> a_;
  std::unique_ptr<Object> o_;
};

// Defined here, once Value is complete (clang requires it for the vector<pair<string, Value>> members).
inline size_t Object::size() const { return members_.size(); }
inline bool Object::empty() const { return members_.empty(); }

struct ParseOptions {
  size_t max_depth = 512;
  bool allow_trailing_garbage = false;
};

// Throws mmfp4::Error("JSON parse error at line L, column C: ...") on malformed text. `what` names the source
// (a file name or "request body") and prefixes the message.
Value parse(std::string_view text, std::string_view what = "JSON", const ParseOptions& opt = {});

struct DumpOptions {
  int indent = -1;               // < 0: one line
  bool ensure_ascii = false;     // escape non-ASCII as \uXXXX (Python's default for json.dumps)
  bool sort_keys = false;
  std::string item_sep = ",";    // Python json.dumps default with indent=None is ", "
  std::string key_sep = ":";     // Python default ": "
  bool python_floats = false;    // 1.0 not 1, 1e-05 not 1e-5, NaN/Infinity as Python writes them
};
std::string dump(const Value& v, const DumpOptions& opt = {});
// Python json.dumps(v) with its defaults (separators ", " and ": ", ensure_ascii as given).
std::string dump_python(const Value& v, bool ensure_ascii, int indent = -1, bool sort_keys = false);

// Appends the JSON string literal for s (quotes included) to out.
void write_string(std::string& out, std::string_view s, bool ensure_ascii = false);

// Shortest decimal that round-trips a double (as Python's repr): "0.1", "1e-05", "1.0" (python) / "1" (plain).
std::string format_double(double d, bool python_style);

}  // namespace mmfp4::json
