#include "core/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace mmfp4::json {

// ---------------------------------------------------------------------------------------------------------------
// Object
// ---------------------------------------------------------------------------------------------------------------
namespace {
constexpr size_t kIndexThreshold = 16;  // linear search below this many members
}

Object::Object(const Object& o) : members_(o.members_) {}
Object& Object::operator=(const Object& o) {
  if (this != &o) {
    members_ = o.members_;
    index_.reset();
  }
  return *this;
}
Object::~Object() = default;

void Object::build_index() const {
  index_ = std::make_unique<std::unordered_map<std::string_view, uint32_t>>();
  index_->reserve(members_.size() * 2);
  for (uint32_t i = 0; i < members_.size(); ++i) index_->emplace(members_[i].first, i);
}

const Value* Object::find(std::string_view key) const {
  if (members_.size() < kIndexThreshold) {
    for (const auto& m : members_)
      if (m.first == key) return &m.second;
    return nullptr;
  }
  if (!index_) build_index();
  auto it = index_->find(key);
  return it == index_->end() ? nullptr : &members_[it->second].second;
}

Value* Object::find(std::string_view key) { return const_cast<Value*>(std::as_const(*this).find(key)); }

void Object::set(std::string key, Value v) {
  if (Value* existing = find(key)) {
    *existing = std::move(v);
    return;
  }
  append_unchecked(std::move(key), std::move(v));
}

void Object::append_unchecked(std::string key, Value v) {
  members_.emplace_back(std::move(key), std::move(v));
  index_.reset();  // string_views into members_ may have moved
}

bool Object::erase(std::string_view key) {
  for (auto it = members_.begin(); it != members_.end(); ++it) {
    if (it->first == key) {
      members_.erase(it);
      index_.reset();
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Value
// ---------------------------------------------------------------------------------------------------------------
Value::Value(const Value& o) : type_(o.type_), b_(o.b_), i_(o.i_), d_(o.d_) {
  if (o.s_) s_ = std::make_unique<std::string>(*o.s_);
  if (o.a_) a_ = std::make_unique<Array>(*o.a_);
  if (o.o_) o_ = std::make_unique<Object>(*o.o_);
}

Value& Value::operator=(const Value& o) {
  if (this != &o) {
    Value tmp(o);
    *this = std::move(tmp);
  }
  return *this;
}

Value::~Value() = default;

const char* Value::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "boolean";
    case Type::Int: return "integer";
    case Type::Double: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

namespace {
[[noreturn]] void type_error(const char* want, Type got) {
  fail("expected a JSON ", want, ", got ", Value::type_name(got));
}
const Value& null_value() {
  static const Value v;
  return v;
}
}  // namespace

bool Value::as_bool() const {
  if (type_ != Type::Bool) type_error("boolean", type_);
  return b_;
}
int64_t Value::as_int() const {
  if (type_ == Type::Int) return i_;
  if (type_ == Type::Double && std::isfinite(d_) && d_ == std::floor(d_) && std::fabs(d_) < 9.2e18)
    return int64_t(d_);
  type_error("integer", type_);
}
double Value::as_double() const {
  if (type_ == Type::Double) return d_;
  if (type_ == Type::Int) return double(i_);
  type_error("number", type_);
}
const std::string& Value::as_string() const {
  if (type_ != Type::String) type_error("string", type_);
  return *s_;
}
const Array& Value::as_array() const {
  if (type_ != Type::Array) type_error("array", type_);
  return *a_;
}
Array& Value::as_array() {
  if (type_ != Type::Array) type_error("array", type_);
  return *a_;
}
const Object& Value::as_object() const {
  if (type_ != Type::Object) type_error("object", type_);
  return *o_;
}
Object& Value::as_object() {
  if (type_ != Type::Object) type_error("object", type_);
  return *o_;
}

const Value* Value::find(std::string_view key) const { return type_ == Type::Object ? o_->find(key) : nullptr; }

const Value& Value::operator[](std::string_view key) const {
  const Value* v = find(key);
  return v ? *v : null_value();
}

size_t Value::size() const {
  if (type_ == Type::Array) return a_->size();
  if (type_ == Type::Object) return o_->size();
  return 0;
}

Value& Value::set(std::string key, Value v) {
  if (type_ == Type::Null) *this = object();
  as_object().set(std::move(key), std::move(v));
  return *this;
}

Value& Value::push_back(Value v) {
  if (type_ == Type::Null) *this = array();
  as_array().push_back(std::move(v));
  return *this;
}

bool Value::operator==(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (type_ == Type::Int && o.type_ == Type::Int) return i_ == o.i_;
    return as_double() == o.as_double();
  }
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::Null: return true;
    case Type::Bool: return b_ == o.b_;
    case Type::String: return *s_ == *o.s_;
    case Type::Array: return *a_ == *o.a_;
    case Type::Object: {
      if (o_->size() != o.o_->size()) return false;
      for (const auto& [k, v] : *o_) {
        const Value* ov = o.o_->find(k);
        if (!ov || !(*ov == v)) return false;
      }
      return true;
    }
    default: return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------------------------
namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view what, const ParseOptions& opt)
      : p_(text.data()), begin_(text.data()), end_(text.data() + text.size()), what_(what), opt_(opt) {}

  Value parse_document() {
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (p_ != end_ && !opt_.allow_trailing_garbage) error("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void error(std::string_view msg) const {
    size_t line = 1, col = 1;
    for (const char* q = begin_; q < p_ && q < end_; ++q) {
      if (*q == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail(what_, ": JSON parse error at line ", line, ", column ", col, ": ", msg);
  }

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  Value parse_value(size_t depth) {
    if (depth > opt_.max_depth) error("nesting too deep");
    if (p_ == end_) error("unexpected end of input");
    switch (*p_) {
      case '{': return parse_object(depth);
      case '[': return parse_array(depth);
      case '"': {
        std::string s;
        parse_string(s);
        return Value(std::move(s));
      }
      case 't': expect_word("true"); return Value(true);
      case 'f': expect_word("false"); return Value(false);
      case 'n': expect_word("null"); return Value(nullptr);
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return parse_number();
        // Python's json writes these for non-finite floats; accept them on input.
        if (*p_ == 'N') { expect_word("NaN"); return Value(std::nan("")); }
        if (*p_ == 'I') { expect_word("Infinity"); return Value(HUGE_VAL); }
        error(std::string("unexpected character '") + *p_ + "'");
    }
  }

  void expect_word(std::string_view w) {
    if (size_t(end_ - p_) < w.size() || std::string_view(p_, w.size()) != w) error("invalid literal");
    p_ += w.size();
  }

  Value parse_number() {
    const char* start = p_;
    bool is_int = true;
    if (*p_ == '-') {
      ++p_;
      if (p_ < end_ && *p_ == 'I') {
        expect_word("Infinity");
        return Value(-HUGE_VAL);
      }
    }
    if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) error("invalid number");
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && *p_ == '.') {
      is_int = false;
      ++p_;
      if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) error("invalid number: digit expected after '.'");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      is_int = false;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) error("invalid number: digit expected in exponent");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (is_int) {
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(start, p_, v);
      if (ec == std::errc() && ptr == p_) return Value(v);
      // too large for int64: fall through to double
    }
    double d = 0;
    auto [ptr, ec] = std::from_chars(start, p_, d);
    if (ec == std::errc::result_out_of_range) {
      d = (*start == '-') ? -HUGE_VAL : HUGE_VAL;  // as Python's float() would give for 1e999
      // tiny values underflow to zero
      const char* e = start;
      while (e < p_ && *e != 'e' && *e != 'E') ++e;
      if (e < p_ && e + 1 < p_ && e[1] == '-') d = (*start == '-') ? -0.0 : 0.0;
    } else if (ec != std::errc() || ptr != p_) {
      error("invalid number");
    }
    return Value(d);
  }

  uint32_t parse_hex4() {
    if (end_ - p_ < 4) error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *p_++;
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else error("invalid hex digit in \\u escape");
    }
    return v;
  }

  void parse_string(std::string& out) {
    ++p_;  // opening quote
    while (true) {
      // Fast path: copy a run of plain bytes.
      const char* run = p_;
      while (p_ < end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) ++p_;
      out.append(run, p_);
      if (p_ == end_) error("unterminated string");
      char c = *p_;
      if (c == '"') {
        ++p_;
        return;
      }
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
      ++p_;  // backslash
      if (p_ == end_) error("unterminated escape");
      char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            // high surrogate: a low one must follow; a lone one becomes U+FFFD
            if (end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
              const char* save = p_;
              p_ += 2;
              uint32_t lo = parse_hex4();
              if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              } else {
                p_ = save;
                cp = 0xFFFD;
              }
            } else {
              cp = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            cp = 0xFFFD;
          }
          append_utf8(out, cp);
          break;
        }
        default: error("invalid escape in string");
      }
    }
  }

  Value parse_array(size_t depth) {
    ++p_;
    Array arr;
    skip_ws();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return Value(std::move(arr));
    }
    while (true) {
      skip_ws();
      arr.push_back(parse_value(depth + 1));
      skip_ws();
      if (p_ == end_) error("unterminated array");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        return Value(std::move(arr));
      }
      error("expected ',' or ']' in array");
    }
  }

  Value parse_object(size_t depth) {
    ++p_;
    Value v = Value::object();
    Object& obj = v.as_object();
    skip_ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return v;
    }
    while (true) {
      skip_ws();
      if (p_ == end_ || *p_ != '"') error("expected a string key in object");
      std::string key;
      parse_string(key);
      skip_ws();
      if (p_ == end_ || *p_ != ':') error("expected ':' after object key");
      ++p_;
      skip_ws();
      Value member = parse_value(depth + 1);
      // Duplicate keys: the last one wins, as in Python and serde_json's Map.
      if (Value* existing = obj.size() < 64 ? obj.find(key) : nullptr) {
        *existing = std::move(member);
      } else {
        obj.append_unchecked(std::move(key), std::move(member));
      }
      skip_ws();
      if (p_ == end_) error("unterminated object");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        dedupe_large(obj);
        return v;
      }
      error("expected ',' or '}' in object");
    }
  }

  // Large objects skip the per-key duplicate check while parsing (it would be quadratic); fix them up once.
  static void dedupe_large(Object& obj) {
    if (obj.size() < 64) return;
    std::unordered_map<std::string_view, size_t> last;
    last.reserve(obj.size() * 2);
    const auto& m = obj.members();
    for (size_t i = 0; i < m.size(); ++i) last[m[i].first] = i;
    if (last.size() == m.size()) return;
    Object fixed;
    // Python keeps the first insertion position with the last value.
    std::unordered_map<std::string_view, bool> seen;
    for (size_t i = 0; i < m.size(); ++i) {
      if (seen[m[i].first]) continue;
      seen[m[i].first] = true;
      fixed.append_unchecked(m[i].first, m[last[m[i].first]].second);
    }
    obj = std::move(fixed);
  }

  const char* p_;
  const char* begin_;
  const char* end_;
  std::string_view what_;
  const ParseOptions& opt_;
};

}  // namespace

Value parse(std::string_view text, std::string_view what, const ParseOptions& opt) {
  return Parser(text, what, opt).parse_document();
}

// ---------------------------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------------------------
namespace {

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i. Invalid bytes give U+FFFD.
uint32_t next_cp(std::string_view s, size_t& i) {
  unsigned char c = s[i];
  auto cont = [&](size_t k) { return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80; };
  if (c < 0x80) { ++i; return c; }
  if ((c & 0xE0) == 0xC0 && c >= 0xC2 && cont(1)) {
    uint32_t cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
    i += 2;
    return cp;
  }
  if ((c & 0xF0) == 0xE0 && cont(1) && cont(2)) {
    uint32_t cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    if (cp >= 0x800) { i += 3; return cp; }
  }
  if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    uint32_t cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
    if (cp >= 0x10000 && cp <= 0x10FFFF) { i += 4; return cp; }
  }
  ++i;
  return 0xFFFD;
}

void put_u(std::string& out, uint32_t v) {
  static const char* hex = "0123456789abcdef";
  out += "\\u";
  for (int sh = 12; sh >= 0; sh -= 4) out += hex[(v >> sh) & 0xF];
}

}  // namespace

void write_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      out += char(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default: put_u(out, c);
      }
      continue;
    }
    size_t start = i;
    uint32_t cp = next_cp(s, i);
    if (ensure_ascii) {
      if (cp >= 0x10000) {
        cp -= 0x10000;
        put_u(out, 0xD800 + (cp >> 10));
        put_u(out, 0xDC00 + (cp & 0x3FF));
      } else {
        put_u(out, cp);
      }
    } else if (cp == 0xFFFD && !(i - start == 3 && s.substr(start, 3) == "\xEF\xBF\xBD")) {
      out += "\xEF\xBF\xBD";  // invalid UTF-8 in: valid JSON out
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += '"';
}

std::string format_double(double d, bool python_style) {
  if (std::isnan(d)) return python_style ? "NaN" : "null";
  if (std::isinf(d)) return python_style ? (d > 0 ? "Infinity" : "-Infinity") : "null";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip
  std::string s(buf, res.ptr);
  if (!python_style) return s;
  // Python repr: scientific notation when exponent < -4 or >= 16, exponent with at least two digits,
  // and a ".0" for integral values in fixed notation.
  int exp10 = d == 0 ? 0 : int(std::floor(std::log10(std::fabs(d))));
  char sci[64];
  auto r2 = std::to_chars(sci, sci + sizeof sci, d, std::chars_format::scientific);
  std::string ss(sci, r2.ptr);  // e.g. 1e-05 -> "1e-05"; 1.5e+20 -> "1.5e+20"
  // Recover the exact exponent from the scientific form (log10 can be off by one at powers of ten).
  size_t epos = ss.find('e');
  exp10 = std::stoi(ss.substr(epos + 1));
  if (exp10 < -4 || exp10 >= 16) {
    std::string mant = ss.substr(0, epos);
    int e = exp10;
    std::string es = std::to_string(std::abs(e));
    if (es.size() < 2) es = "0" + es;
    return mant + "e" + (e < 0 ? "-" : "+") + es;
  }
  char fix[64];
  auto r3 = std::to_chars(fix, fix + sizeof fix, d, std::chars_format::fixed);
  std::string fs(fix, r3.ptr);
  if (fs.find('.') == std::string::npos) fs += ".0";
  return fs;
}

namespace {

void dump_rec(std::string& out, const Value& v, const DumpOptions& opt, int level) {
  auto newline = [&](int lvl) {
    if (opt.indent < 0) return;
    out += '\n';
    out.append(size_t(opt.indent) * size_t(lvl), ' ');
  };
  // With indentation, Python drops the trailing space of the item separator at line ends.
  std::string item_sep = opt.item_sep;
  if (opt.indent >= 0 && !item_sep.empty() && item_sep.back() == ' ') item_sep.pop_back();
  switch (v.type()) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Type::Int: out += std::to_string(v.as_int()); break;
    case Type::Double: out += format_double(v.as_double(), opt.python_floats); break;
    case Type::String: write_string(out, v.as_string(), opt.ensure_ascii); break;
    case Type::Array: {
      const Array& a = v.as_array();
      out += '[';
      if (a.empty()) { out += ']'; break; }
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        dump_rec(out, a[i], opt, level + 1);
      }
      newline(level);
      out += ']';
      break;
    }
    case Type::Object: {
      const Object& o = v.as_object();
      out += '{';
      if (o.empty()) { out += '}'; break; }
      std::vector<const Member*> ms;
      for (const auto& m : o) ms.push_back(&m);
      if (opt.sort_keys)
        std::sort(ms.begin(), ms.end(), [](const Member* a, const Member* b) { return a->first < b->first; });
      for (size_t i = 0; i < ms.size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        write_string(out, ms[i]->first, opt.ensure_ascii);
        out += opt.key_sep;
        dump_rec(out, ms[i]->second, opt, level + 1);
      }
      newline(level);
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string dump(const Value& v, const DumpOptions& opt) {
  std::string out;
  dump_rec(out, v, opt, 0);
  return out;
}

std::string dump_python(const Value& v, bool ensure_ascii, int indent, bool sort_keys) {
  DumpOptions o{indent, ensure_ascii, sort_keys, ", ", ": ", true};
  return dump(v, o);
}

}  // namespace mmfp4::json
