#include "tokenizer/jinja/python_ops.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/json.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/format.h"
#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja {

namespace {

constexpr int kMaxReprDepth = 200;

// Jinja's object_type_repr, used in undefined messages: "dict object", "None".
std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_namespace()) return "jinja2.utils.Namespace object";
  return type_name(v) + " object";
}

Value undefined_attr(const Value& obj, std::string_view name) {
  return Value::undefined(cat("'", object_type_repr(obj), "' has no attribute '", name, "'"));
}

Value undefined_item(const Value& obj, const Value& key) {
  if (key.is_string()) return undefined_attr(obj, key.str());
  return Value::undefined(cat(object_type_repr(obj), " has no element ", repr(key)));
}

void repr_into(std::string& out, const Value& v, std::vector<const void*>& stack);

void repr_seq(std::string& out, const Value& v, std::vector<const void*>& stack) {
  bool tuple = v.is_tuple();
  const auto& items = v.items();
  out += tuple ? '(' : '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    repr_into(out, items[i], stack);
  }
  if (tuple && items.size() == 1) out += ',';
  out += tuple ? ')' : ']';
}

void repr_dict(std::string& out, const Value& v, std::vector<const void*>& stack) {
  out += '{';
  bool first = true;
  for (const auto& [k, x] : v.dict_data().entries()) {
    if (!first) out += ", ";
    first = false;
    repr_into(out, k, stack);
    out += ": ";
    repr_into(out, x, stack);
  }
  out += '}';
}

void repr_into(std::string& out, const Value& v, std::vector<const void*>& stack) {
  switch (v.kind()) {
    case Kind::String: out += repr_string(v.str()); return;
    case Kind::Undefined: out += "Undefined"; return;
    case Kind::List:
    case Kind::Tuple:
    case Kind::Dict:
    case Kind::Namespace: {
      // Python prints a container that contains itself as [...] / {...}.
      for (const void* p : stack) {
        if (p == v.identity()) {
          out += v.is_list() ? "[...]" : v.is_tuple() ? "(...)" : "{...}";
          return;
        }
      }
      if (int(stack.size()) >= kMaxReprDepth) runtime_fail("maximum recursion depth exceeded while getting the repr");
      stack.push_back(v.identity());
      if (v.is_sequence()) {
        repr_seq(out, v, stack);
      } else if (v.is_dict()) {
        repr_dict(out, v, stack);
      } else {
        out += "<Namespace ";
        repr_dict(out, v, stack);
        out += '>';
      }
      stack.pop_back();
      return;
    }
    default: out += to_str(v);
  }
}

bool is_int_like(const Value& v) { return v.is_int() || v.is_bool(); }

[[noreturn]] void binop_fail(const char* op, const Value& a, const Value& b) {
  require_defined(a);
  require_defined(b);
  runtime_fail("unsupported operand type(s) for ", op, ": '", type_name(a), "' and '", type_name(b), "'");
}

int64_t checked(bool overflow, int64_t v) {
  if (overflow) runtime_fail("integer overflow (Python integers are unbounded; this interpreter uses 64 bits)");
  return v;
}

// Python's float floor division and modulo (the result of % has the sign of the divisor).
void float_divmod(double a, double b, double& div, double& mod) {
  mod = std::fmod(a, b);
  div = (a - mod) / b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) {
      mod += b;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, b);
  }
  if (div != 0) {
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    div = floordiv;
  } else {
    div = std::copysign(0.0, a / b);
  }
}

Value repeat(const Value& seq, int64_t n, size_t max_len) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    const std::string& s = seq.str();
    if (!s.empty() && uint64_t(n) > max_len / s.size()) runtime_fail("string repetition exceeds the size limit");
    std::string out;
    out.reserve(s.size() * size_t(n));
    for (int64_t i = 0; i < n; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.items();
  if (!items.empty() && uint64_t(n) > max_len / items.size()) runtime_fail("list repetition exceeds the size limit");
  std::vector<Value> out;
  out.reserve(items.size() * size_t(n));
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

int64_t slice_index(const Value& v, const char* what) {
  if (is_int_like(v)) return v.as_int();
  require_defined(v);
  runtime_fail("slice indices must be integers or None, not ", type_name(v), " (", what, ")");
}

}  // namespace

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Iterator: return "generator";
    case Kind::Dict: return "dict";
    case Kind::Namespace: return "Namespace";
    case Kind::Object: return v.obj().type_name();
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool:
    case Kind::Int: return v.as_int() != 0;
    case Kind::Float: return v.as_float() != 0.0;
    case Kind::String: return !v.str().empty();
    case Kind::List:
    case Kind::Tuple: return !v.items().empty();
    case Kind::Dict: return v.dict_data().size() != 0;
    default: return true;
  }
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  return json::format_double(d, true);
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return v.as_bool() ? "True" : "False";
    case Kind::Int: return std::to_string(v.as_int());
    case Kind::Float: return format_float(v.as_float());
    case Kind::String: return v.str();
    case Kind::Object: return v.obj().repr();
    case Kind::Iterator: return "<generator object>";  // Python adds the function name and an address
    default: return repr(v);
  }
}

std::string repr(const Value& v) {
  std::string out;
  std::vector<const void*> stack;
  repr_into(out, v, stack);
  return out;
}

// Python repr(str): single quotes unless the text has ' and no ", backslash escapes for control characters,
// non-printable Latin-1 and format/separator characters; other non-ASCII text stays as is.
std::string repr_string(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char q = has_single && !has_double ? '"' : '\'';
  std::string out(1, q);
  static const char* hex = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = utf8::next(s, i);
    if (cp == uint32_t(q) || cp == '\\') {
      out += '\\';
      out += char(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) {
      out += "\\x";
      out += hex[cp >> 4];
      out += hex[cp & 15];
    } else if ((cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) ||
               cp == 0x1680 || cp == 0x3000 || cp == 0xFEFF || (cp >= 0xE000 && cp <= 0xF8FF) ||
               (cp >= 0xFFF9 && cp <= 0xFFFB)) {
      out += "\\u";
      for (int sh = 12; sh >= 0; sh -= 4) out += hex[(cp >> sh) & 15];
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += q;
  return out;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::String: return a.str_ptr() == b.str_ptr() || a.str() == b.str();
    case Kind::List:
    case Kind::Tuple: {
      if (a.identity() == b.identity()) return true;
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Kind::Dict: {
      if (a.identity() == b.identity()) return true;
      const DictData& x = a.dict_data();
      const DictData& y = b.dict_data();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* o = y.find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

bool less(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 byte order is code point order
  if (a.kind() == b.kind() && a.is_sequence()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less(x[i], y[i], op);
    }
    return x.size() < y.size();
  }
  require_defined(a);
  require_defined(b);
  runtime_fail("'", op, "' not supported between instances of '", type_name(a), "' and '", type_name(b), "'");
}

int compare(const Value& a, const Value& b) {
  if (less(a, b)) return -1;
  if (less(b, a)) return 1;
  return 0;
}

Value add(const Value& a, const Value& b, size_t max_len) {
  if (is_int_like(a) && is_int_like(b)) {
    int64_t r = 0;
    bool overflow = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
    return Value(checked(overflow, r));
  }
  if (a.is_number() && b.is_number()) return Value(a.as_float() + b.as_float());
  if (a.is_string() && b.is_string()) {
    if (a.str().size() + b.str().size() > max_len) runtime_fail("string exceeds the size limit");
    return Value(a.str() + b.str());
  }
  if (a.is_sequence() && a.kind() == b.kind()) {
    std::vector<Value> out = a.items();
    if (out.size() + b.items().size() > max_len) runtime_fail("list exceeds the size limit");
    out.insert(out.end(), b.items().begin(), b.items().end());
    return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  require_defined(a);
  require_defined(b);
  if (a.is_string() || a.is_sequence())
    runtime_fail("can only concatenate ", type_name(a), " (not \"", type_name(b), "\") to ", type_name(a));
  binop_fail("+", a, b);
}

Value sub(const Value& a, const Value& b) {
  if (is_int_like(a) && is_int_like(b)) {
    int64_t r = 0;
    bool overflow = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
    return Value(checked(overflow, r));
  }
  if (a.is_number() && b.is_number()) return Value(a.as_float() - b.as_float());
  binop_fail("-", a, b);
}

Value mul(const Value& a, const Value& b, size_t max_len) {
  if (is_int_like(a) && is_int_like(b)) {
    int64_t r = 0;
    bool overflow = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
    return Value(checked(overflow, r));
  }
  if (a.is_number() && b.is_number()) return Value(a.as_float() * b.as_float());
  if ((a.is_string() || a.is_sequence()) && is_int_like(b)) return repeat(a, b.as_int(), max_len);
  if ((b.is_string() || b.is_sequence()) && is_int_like(a)) return repeat(b, a.as_int(), max_len);
  if ((a.is_string() || a.is_sequence()) && b.is_number())
    runtime_fail("can't multiply sequence by non-int of type '", type_name(b), "'");
  binop_fail("*", a, b);
}

Value truediv(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) binop_fail("/", a, b);
  if (b.as_float() == 0) runtime_fail("division by zero");
  return Value(a.as_float() / b.as_float());
}

Value floordiv(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) binop_fail("//", a, b);
  if (is_int_like(a) && is_int_like(b)) {
    int64_t x = a.as_int(), y = b.as_int();
    if (y == 0) runtime_fail("integer division or modulo by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) checked(true, 0);
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value(q);
  }
  if (b.as_float() == 0) runtime_fail("float floor division by zero");
  double div, m;
  float_divmod(a.as_float(), b.as_float(), div, m);
  return Value(div);
}

Value mod(const Value& a, const Value& b, size_t max_len) {
  if (a.is_string()) return Value(percent_format(a.str(), b, max_len));
  if (!a.is_number() || !b.is_number()) binop_fail("%", a, b);
  if (is_int_like(a) && is_int_like(b)) {
    int64_t x = a.as_int(), y = b.as_int();
    if (y == 0) runtime_fail("integer division or modulo by zero");
    if (y == -1) return Value(int64_t(0));
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value(r);
  }
  if (b.as_float() == 0) runtime_fail("float modulo");
  double div, m;
  float_divmod(a.as_float(), b.as_float(), div, m);
  return Value(m);
}

Value power(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) binop_fail("** or pow()", a, b);
  if (is_int_like(a) && is_int_like(b) && b.as_int() >= 0) {
    int64_t base = a.as_int(), e = b.as_int(), r = 1;
    while (e > 0) {
      if (e & 1) checked(__builtin_mul_overflow(r, base, &r), 0);
      e >>= 1;
      if (e > 0) checked(__builtin_mul_overflow(base, base, &base), 0);
    }
    return Value(r);
  }
  double x = a.as_float(), y = b.as_float();
  if (x == 0 && y < 0) runtime_fail("0.0 cannot be raised to a negative power");
  if (x < 0 && y != std::floor(y)) runtime_fail("negative number cannot be raised to a fractional power");
  return Value(std::pow(x, y));
}

Value negate(const Value& a) {
  if (is_int_like(a)) {
    checked(a.as_int() == std::numeric_limits<int64_t>::min(), 0);  // before negating: -INT64_MIN overflows
    return Value(-a.as_int());
  }
  if (a.is_float()) return Value(-a.as_float());
  require_defined(a);
  runtime_fail("bad operand type for unary -: '", type_name(a), "'");
}

Value positive(const Value& a) {
  if (is_int_like(a)) return Value(a.as_int());
  if (a.is_float()) return a;
  require_defined(a);
  runtime_fail("bad operand type for unary +: '", type_name(a), "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::String:
      if (!item.is_string()) {
        require_defined(item);
        runtime_fail("'in <string>' requires string as left operand, not ", type_name(item));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Kind::List:
    case Kind::Tuple:
      for (const Value& x : container.items())
        if (equals(x, item)) return true;
      return false;
    case Kind::Iterator: {
      // Python consumes a generator up to the first match.
      ListData& d = container.list_data();
      while (d.pos < d.items.size())
        if (equals(d.items[d.pos++], item)) return true;
      return false;
    }
    case Kind::Dict: return container.dict_data().find(item) != nullptr;
    case Kind::Undefined: return false;  // iterates as empty
    default: runtime_fail("argument of type '", type_name(container), "' is not iterable");
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return {};
    case Kind::List:
    case Kind::Tuple: return v.items();
    case Kind::Iterator: {
      ListData& d = v.list_data();
      std::vector<Value> rest(d.items.begin() + long(std::min(d.pos, d.items.size())), d.items.end());
      d.pos = d.items.size();
      return rest;
    }
    case Kind::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_data().size());
      for (const auto& e : v.dict_data().entries()) keys.push_back(e.first);
      return keys;
    }
    case Kind::String: {
      std::vector<Value> out;
      for (auto& c : utf8::chars(v.str())) out.emplace_back(std::move(c));
      return out;
    }
    default: runtime_fail("'", type_name(v), "' object is not iterable");
  }
}

std::optional<size_t> length(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return 0;
    case Kind::String: return utf8::length(v.str());
    case Kind::List:
    case Kind::Tuple: return v.items().size();
    case Kind::Dict: return v.dict_data().size();
    default: return std::nullopt;
  }
}

void require_defined(const Value& v) {
  if (v.is_undefined()) throw RuntimeFailure(v.undefined_hint());
}

Value get_attr(const Value& obj, std::string_view name) {
  require_defined(obj);
  // The sandbox hides Python's dunder attributes (__class__, __init__...): unsafe means undefined.
  bool dunder = name.size() >= 2 && name[0] == '_' && name[1] == '_';
  Value out;
  switch (obj.kind()) {
    case Kind::String:
    case Kind::List:
    case Kind::Tuple:
      if (!dunder && find_method(obj, name, out)) return out;
      return undefined_attr(obj, name);
    case Kind::Dict:
      if (!dunder && find_method(obj, name, out)) return out;
      if (const Value* v = obj.dict_data().find_key(name)) return *v;
      return undefined_attr(obj, name);
    case Kind::Namespace:
      if (const Value* v = obj.dict_data().find_key(name)) return *v;
      return undefined_attr(obj, name);
    case Kind::Object:
      if (!dunder && obj.obj().attr(name, out)) return out;
      return undefined_attr(obj, name);
    default: return undefined_attr(obj, name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  require_defined(obj);
  switch (obj.kind()) {
    case Kind::String:
    case Kind::List:
    case Kind::Tuple:
      if (is_int_like(key)) {
        int64_t i = key.as_int();
        if (obj.is_string()) {
          const std::string& s = obj.str();
          if (utf8::is_ascii(s)) {
            int64_t n = int64_t(s.size());
            if (i < 0) i += n;
            if (i < 0 || i >= n) return undefined_item(obj, key);
            return Value(std::string(1, s[size_t(i)]));
          }
          auto offs = utf8::offsets(s);
          int64_t n = int64_t(offs.size()) - 1;
          if (i < 0) i += n;
          if (i < 0 || i >= n) return undefined_item(obj, key);
          return Value(s.substr(offs[size_t(i)], offs[size_t(i) + 1] - offs[size_t(i)]));
        }
        const auto& items = obj.items();
        int64_t n = int64_t(items.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return undefined_item(obj, key);
        return items[size_t(i)];
      }
      if (key.is_string()) return get_attr(obj, key.str());
      return undefined_item(obj, key);
    case Kind::Dict: {
      if (key.is_list() || key.is_dict() || key.is_namespace() || key.is_undefined()) {
        require_defined(key);
        return undefined_item(obj, key);  // unhashable: Jinja catches the TypeError
      }
      if (const Value* v = obj.dict_data().find(key)) return *v;
      if (key.is_string()) {
        Value m;
        if (find_method(obj, key.str(), m)) return m;
      }
      return undefined_item(obj, key);
    }
    case Kind::Namespace:
    case Kind::Object:
      if (key.is_string()) return get_attr(obj, key.str());
      return undefined_item(obj, key);
    default: return undefined_item(obj, key);
  }
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  require_defined(obj);
  // Jinja compiles slices to plain Python subscripts (not through its forgiving getitem): a slice of anything
  // but a str, list or tuple is an error.
  if (obj.is_dict()) runtime_fail("unhashable type: 'slice'");
  if (!obj.is_string() && !obj.is_sequence()) runtime_fail("'", type_name(obj), "' object is not subscriptable");
  auto given = [](const Value& v) { return !v.is_none() && !v.is_undefined(); };
  int64_t st = given(step) ? slice_index(step, "step") : 1;
  if (st == 0) runtime_fail("slice step cannot be zero");
  std::vector<size_t> offs;
  int64_t n;
  bool ascii = obj.is_string() && utf8::is_ascii(obj.str());
  if (obj.is_string()) {
    if (ascii) {
      n = int64_t(obj.str().size());
    } else {
      offs = utf8::offsets(obj.str());
      n = int64_t(offs.size()) - 1;
    }
  } else {
    n = int64_t(obj.items().size());
  }
  // Python's PySlice_AdjustIndices: negative bounds count from the end, then clamp to the sequence (to -1 / n-1
  // when stepping backwards).
  auto bound = [&](const Value& v, const char* what, int64_t absent) {
    if (!given(v)) return absent;
    int64_t x = slice_index(v, what);
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t lo = bound(start, "start", st < 0 ? n - 1 : 0);
  int64_t hi = bound(stop, "stop", st < 0 ? -1 : n);
  std::vector<int64_t> idx;
  if (st > 0) {
    for (int64_t i = lo; i < hi; i += st) {
      idx.push_back(i);
      if (i > std::numeric_limits<int64_t>::max() - st) break;
    }
  } else {
    for (int64_t i = lo; i > hi; i += st) {
      idx.push_back(i);
      if (i < std::numeric_limits<int64_t>::min() - st) break;
    }
  }
  if (obj.is_string()) {
    const std::string& s = obj.str();
    std::string out;
    if (ascii && st == 1) return Value(s.substr(size_t(lo), idx.size()));
    for (int64_t i : idx) {
      if (ascii) out += s[size_t(i)];
      else out.append(s, offs[size_t(i)], offs[size_t(i) + 1] - offs[size_t(i)]);
    }
    return Value(std::move(out));
  }
  std::vector<Value> out;
  out.reserve(idx.size());
  for (int64_t i : idx) out.push_back(obj.items()[size_t(i)]);
  return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

namespace {

// Python's int()/float() accept surrounding whitespace and single underscores between digits.
std::optional<std::string> clean_number(std::string_view s) {
  std::string_view t = utf8::strip(s, nullptr, true, true);
  if (t.empty()) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '_') {
      bool ok = i > 0 && i + 1 < t.size() && std::isalnum(static_cast<unsigned char>(t[i - 1])) &&
                std::isalnum(static_cast<unsigned char>(t[i + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::optional<int64_t> parse_int(std::string_view s, int base) {
  auto c = clean_number(s);
  if (!c) return std::nullopt;
  const std::string& t = *c;
  size_t i = 0;
  bool neg = false;
  if (t[i] == '+' || t[i] == '-') neg = t[i++] == '-';
  if (i >= t.size()) return std::nullopt;
  if (base == 16 && t.size() > i + 1 && t[i] == '0' && (t[i + 1] | 0x20) == 'x') i += 2;
  if (base == 8 && t.size() > i + 1 && t[i] == '0' && (t[i + 1] | 0x20) == 'o') i += 2;
  if (base == 2 && t.size() > i + 1 && t[i] == '0' && (t[i + 1] | 0x20) == 'b') i += 2;
  if (i >= t.size()) return std::nullopt;
  int64_t v = 0;
  for (; i < t.size(); ++i) {
    char ch = char(t[i] | 0x20);
    int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'z' ? ch - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, int64_t(base), &v) || __builtin_add_overflow(v, int64_t(d), &v))
      runtime_fail("integer too large");
  }
  return neg ? -v : v;
}

std::optional<double> parse_float(std::string_view s) {
  auto c = clean_number(s);
  if (!c) return std::nullopt;
  const std::string& t = *c;
  std::string lower = utf8::lower(t);
  size_t sign = (lower[0] == '+' || lower[0] == '-') ? 1 : 0;
  std::string body = lower.substr(sign);
  double sgn = sign && lower[0] == '-' ? -1.0 : 1.0;
  if (body == "inf" || body == "infinity") return sgn * std::numeric_limits<double>::infinity();
  if (body == "nan") return std::numeric_limits<double>::quiet_NaN();
  for (char ch : body)
    if (!(std::isdigit(static_cast<unsigned char>(ch)) || ch == '.' || ch == 'e' || ch == '+' || ch == '-'))
      return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return v;
}

}  // namespace mmfp4::jinja
