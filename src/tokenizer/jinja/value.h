// The runtime values of the template interpreter, with Python's object model where templates can see it:
// lists, dicts and namespaces are shared by reference (an alias sees an append), strings are immutable and cheap
// to copy, and Undefined remembers why it is undefined so that using it wrongly gives Jinja's message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mmfp4::jinja {

class Renderer;
class Value;
struct Args;

enum class Kind : uint8_t {
  Undefined,
  None,
  Bool,
  Int,
  Float,
  String,
  List,
  Tuple,
  Iterator,   // a Python generator (map, select, reject...): always true, consumed by iteration, no len()
  Dict,
  Namespace,  // jinja2.utils.Namespace: attribute assignment allowed, no item access
  Object,     // a host object: callables, loop, cycler, joiner
};

struct ListData {
  std::vector<Value> items;
  size_t pos = 0;  // Iterator only: items before pos have been consumed
};

// Insertion-ordered like Python dicts. Keys are hashable Python values (str, int, float, bool, None, tuple);
// equal keys (1, 1.0 and True) are one key, as in Python.
class DictData {
 public:
  const Value* find(const Value& key) const;
  Value* find(const Value& key);
  const Value* find_key(std::string_view key) const;  // a str key
  void set(Value key, Value v);
  bool erase(const Value& key);
  size_t size() const;  // defined below Value: clang instantiates vector<pair<Value, Value>>::size eagerly
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  void clear();

 private:
  ptrdiff_t index_of(const Value& key) const;
  ptrdiff_t index_of(std::string_view key) const;
  void rebuild_index() const;
  std::vector<std::pair<Value, Value>> entries_;
  // String keys -> position, built once a dict is large (tool schemas); small dicts are scanned.
  mutable std::unique_ptr<std::unordered_map<std::string, size_t>> index_;
};

// Host objects: functions, macros, bound methods, the loop variable, cycler, joiner.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;  // as Python's type(x).__name__, e.g. "function", "LoopContext"
  virtual std::string repr() const {
    std::string s = "<";
    s += type_name();
    s += " object>";
    return s;
  }
  // Attribute lookup; nullptr-like Undefined result is signalled by returning false.
  virtual bool attr(std::string_view name, Value& out) const;
  virtual bool callable() const { return false; }
  virtual Value call(Renderer& r, Args& args) const;
};

class Value {
 public:
  Value() = default;  // Undefined with no hint
  Value(bool b) : kind_(Kind::Bool), i_(b) {}
  Value(int v) : kind_(Kind::Int), i_(v) {}
  Value(int64_t v) : kind_(Kind::Int), i_(v) {}
  Value(double v) : kind_(Kind::Float), f_(v) {}
  Value(std::string s) : kind_(Kind::String), s_(std::make_shared<const std::string>(std::move(s))) {}
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}

  static Value none() {
    Value v;
    v.kind_ = Kind::None;
    return v;
  }
  // hint is Jinja's UndefinedError message for this value ("'x' is undefined").
  static Value undefined(std::string hint);
  static Value list(std::vector<Value> items = {});
  static Value tuple(std::vector<Value> items);
  static Value iterator(std::vector<Value> items);
  static Value dict();
  static Value namespace_object();
  static Value object(std::shared_ptr<const Object> o);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_tuple() const { return kind_ == Kind::Tuple; }
  bool is_sequence() const { return kind_ == Kind::List || kind_ == Kind::Tuple; }
  bool is_iterator() const { return kind_ == Kind::Iterator; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_namespace() const { return kind_ == Kind::Namespace; }
  bool is_object() const { return kind_ == Kind::Object; }

  bool as_bool() const { return i_ != 0; }       // Bool
  int64_t as_int() const { return i_; }          // Int or Bool
  double as_float() const { return kind_ == Kind::Float ? f_ : double(i_); }  // any number
  const std::string& str() const { return *s_; }  // String
  const std::shared_ptr<const std::string>& str_ptr() const { return s_; }
  std::vector<Value>& items() const { return static_cast<ListData*>(p_.get())->items; }  // List, Tuple, Iterator
  ListData& list_data() const { return *static_cast<ListData*>(p_.get()); }
  DictData& dict_data() const { return *static_cast<DictData*>(p_.get()); }             // Dict or Namespace
  const Object& obj() const { return *static_cast<const Object*>(p_.get()); }           // Object
  // Undefined's message ("" when made without a hint).
  std::string undefined_hint() const { return s_ ? *s_ : std::string("value is undefined"); }
  // Identity for `is sameas` and cycle checks (same container object).
  const void* identity() const { return p_.get(); }

 private:
  Kind kind_ = Kind::Undefined;
  union {
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<const std::string> s_;  // String text, or Undefined's hint
  std::shared_ptr<void> p_;               // ListData, DictData or Object
};

inline size_t DictData::size() const { return entries_.size(); }

}  // namespace mmfp4::jinja
