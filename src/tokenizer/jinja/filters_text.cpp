// Text and number filters (Jinja2 3.1 semantics with autoescaping off, as in transformers' environment).
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja/builtin_util.h"
#include "tokenizer/jinja/filters.h"
#include "tokenizer/jinja/format.h"
#include "tokenizer/jinja/json_bridge.h"
#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja::filters {

namespace {

void no_args(const Args& args, const char* name) { ArgBinder(args, name, {}); }

// Python's str.splitlines() boundaries.
bool is_line_break(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
         cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

std::vector<std::string> splitlines(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0, start = 0;
  while (i < s.size()) {
    size_t at = i;
    uint32_t cp = utf8::next(s, i);
    if (!is_line_break(cp)) continue;
    out.emplace_back(s.substr(start, at - start));
    if (cp == '\r' && i < s.size() && s[i] == '\n') ++i;
    start = i;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  if (utf8::is_space(cp)) return false;
  // Approximates Python's Unicode \w: punctuation and symbol blocks are not word characters.
  if ((cp >= 0xA1 && cp <= 0xBF && cp != 0xAA && cp != 0xB5 && cp != 0xBA) || cp == 0xD7 || cp == 0xF7) return false;
  if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFF0F) ||
      (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0x1F000 && cp <= 0x1FAFF))
    return false;
  return true;
}

}  // namespace

Value capitalize(Renderer&, const Value& v, Args& args) {
  no_args(args, "capitalize");
  return Value(utf8::capitalize(to_str(v)));
}

Value center(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "center", {"width"});
  int64_t width = a.given(0) ? to_index(a[0], "center") : 80;
  std::string s = to_str(v);
  int64_t len = int64_t(utf8::length(s));
  if (width <= len) return Value(s);
  if (uint64_t(width) > r.max_len()) runtime_fail("center width exceeds the size limit");
  int64_t marg = width - len;
  int64_t left = marg / 2 + (marg & width & 1);  // Python's str.center rounding
  return Value(std::string(size_t(left), ' ') + s + std::string(size_t(marg - left), ' '));
}

Value escape(Renderer&, const Value& v, Args& args) {
  no_args(args, "escape");
  std::string s = to_str(v), out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(std::move(out));
}

Value format(Renderer& r, const Value& v, Args& args) {
  if (!args.positional.empty() && !args.keyword.empty())
    runtime_fail("can't handle positional and keyword arguments at the same time");
  Value fmt_args;
  if (!args.keyword.empty()) {
    fmt_args = Value::dict();
    for (const auto& [k, x] : args.keyword) fmt_args.dict_data().set(Value(k), x);
  } else {
    fmt_args = Value::tuple(args.positional);
  }
  return Value(percent_format(to_str(v), fmt_args, r.max_len()));
}

Value indent(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "indent", {"width", "first", "blank"});
  std::string ind;
  if (a.given(0) && a[0].is_string()) {
    ind = a[0].str();
  } else {
    int64_t w = a.given(0) ? to_index(a[0], "indent") : 4;
    if (w > int64_t(r.max_len())) runtime_fail("indent width exceeds the size limit");
    ind.assign(size_t(std::max<int64_t>(w, 0)), ' ');
  }
  // Jinja appends "\n" to the value and splits its lines: anything but a string fails there.
  require_defined(v);
  if (!v.is_string()) runtime_fail("indent needs a string, not ", type_name(v));
  bool first = a.given(1) && truthy(a[1]);
  bool blank = a.given(2) && truthy(a[2]);
  std::string s = to_str(v) + "\n";  // Jinja appends a newline so that splitlines keeps a trailing empty line
  std::vector<std::string> lines = splitlines(s);
  uint64_t estimate = uint64_t(s.size()) + uint64_t(lines.size() + 1) * (ind.size() + 1);
  if (estimate > r.max_len()) runtime_fail("indent result exceeds the size limit");
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + ind;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? std::string() : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += ind;
      rv += lines[i];
    }
  }
  if (first) rv = ind + rv;
  return Value(std::move(rv));
}

Value lower(Renderer&, const Value& v, Args& args) {
  no_args(args, "lower");
  return Value(utf8::lower(to_str(v)));
}

Value upper(Renderer&, const Value& v, Args& args) {
  no_args(args, "upper");
  return Value(utf8::upper(to_str(v)));
}

Value replace(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "replace", {"old", "new", "count"});
  if (!a.given(0) || !a.given(1)) runtime_fail("replace() missing required arguments 'old' and 'new'");
  std::string s = to_str(v), old = to_str(a[0]), neu = to_str(a[1]);
  int64_t count = a.given(2) && !a[2].is_none() ? to_index(a[2], "replace") : -1;
  std::string out;
  if (old.empty()) {
    // Python inserts `new` before every character and at the end.
    auto chars = utf8::chars(s);
    if (uint64_t(chars.size() + 1) * neu.size() + s.size() > r.max_len()) runtime_fail("replace result exceeds the size limit");
    int64_t done = 0;
    for (const auto& c : chars) {
      if (count < 0 || done < count) out += neu, ++done;
      out += c;
    }
    if (count < 0 || done < count) out += neu;
    return Value(std::move(out));
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += neu;
    if (out.size() > r.max_len()) runtime_fail("replace result exceeds the size limit");
    pos = hit + old.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return Value(std::move(out));
}

Value string(Renderer&, const Value& v, Args& args) {
  no_args(args, "string");
  return v.is_string() ? v : Value(to_str(v));
}

// Jinja's title: upper-case the first character of every word, where words begin after '-', whitespace or an
// opening bracket; every other character is lower-cased (unlike str.title, "they're" stays "They're").
Value title(Renderer&, const Value& v, Args& args) {
  no_args(args, "title");
  std::string s = to_str(v), out;
  size_t i = 0;
  bool at_start = true;
  while (i < s.size()) {
    uint32_t cp = utf8::next(s, i);
    bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || utf8::is_space(cp);
    if (at_start || sep) {
      std::string one;
      utf8::append(one, cp);
      out += utf8::upper(one);
    } else {
      utf8::append(out, utf8::to_lower(cp));
    }
    at_start = sep;
  }
  return Value(std::move(out));
}

Value trim(Renderer&, const Value& v, Args& args) {
  ArgBinder a(args, "trim", {"chars"});
  std::string s = to_str(v);
  if (a.given(0) && !a[0].is_none()) {
    std::string chars = str_arg(a[0], "trim() chars");
    return Value(std::string(utf8::strip(s, &chars, true, true)));
  }
  return Value(std::string(utf8::strip(s, nullptr, true, true)));
}

Value truncate(Renderer&, const Value& v, Args& args) {
  ArgBinder a(args, "truncate", {"length", "killwords", "end", "leeway"});
  std::string s = to_str(v);
  int64_t length = a.given(0) ? to_index(a[0], "truncate") : 255;
  bool killwords = a.given(1) && truthy(a[1]);
  std::string end = a.given(2) ? to_str(a[2]) : "...";
  int64_t leeway = a.given(3) && !a[3].is_none() ? to_index(a[3], "truncate") : 5;
  int64_t end_len = int64_t(utf8::length(end));
  if (length < end_len) runtime_fail("expected length >= ", end_len, ", got ", length);
  if (leeway < 0) runtime_fail("expected leeway >= 0, got ", leeway);
  auto offs = utf8::offsets(s);
  int64_t n = int64_t(offs.size()) - 1;
  if (n <= length + leeway) return Value(s);
  std::string head = s.substr(0, offs[size_t(length - end_len)]);
  if (killwords) return Value(head + end);
  size_t sp = head.rfind(' ');
  if (sp != std::string::npos) head.resize(sp);
  return Value(head + end);
}

Value wordcount(Renderer&, const Value& v, Args& args) {
  no_args(args, "wordcount");
  std::string s = to_str(v);
  int64_t n = 0;
  bool in_word = false;
  size_t i = 0;
  while (i < s.size()) {
    bool w = is_word_char(utf8::next(s, i));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

Value safe(Renderer&, const Value& v, Args& args) {
  no_args(args, "safe");
  return v.is_string() ? v : Value(to_str(v));
}

Value abs(Renderer&, const Value& v, Args& args) {
  no_args(args, "abs");
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == INT64_MIN) runtime_fail("integer overflow");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  require_defined(v);
  runtime_fail("bad operand type for abs(): '", type_name(v), "'");
}

Value to_int(Renderer&, const Value& v, Args& args) {
  ArgBinder a(args, "int", {"default", "base"});
  Value fallback = a.get(0, Value(int64_t(0)));
  require_defined(v);  // Undefined.__int__ raises UndefinedError, which int() does not catch
  int64_t base = a.given(1) ? to_index(a[1], "int") : 10;
  if (v.is_string()) {
    if (base != 0 && (base < 2 || base > 36)) runtime_fail("int() base must be >= 2 and <= 36, or 0");
    if (auto i = parse_int(v.str(), int(base == 0 ? 10 : base))) return Value(*i);
    // Jinja's quirk: "42.23"|int is 42 through float().
    if (auto d = parse_float(v.str())) {
      if (!std::isfinite(*d)) runtime_fail("cannot convert float ", format_float(*d), " to integer");
      if (std::fabs(*d) >= 9.2e18) runtime_fail("integer overflow");
      return Value(int64_t(std::trunc(*d)));
    }
    return fallback;
  }
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    double d = v.as_float();
    if (!std::isfinite(d)) runtime_fail("cannot convert float ", format_float(d), " to integer");
    if (std::fabs(d) >= 9.2e18) runtime_fail("integer overflow");
    return Value(int64_t(std::trunc(d)));
  }
  return fallback;
}

Value to_float(Renderer&, const Value& v, Args& args) {
  ArgBinder a(args, "float", {"default"});
  Value fallback = a.get(0, Value(0.0));
  require_defined(v);
  if (v.is_number()) return Value(v.as_float());
  if (v.is_string()) {
    if (auto d = parse_float(v.str())) return Value(*d);
  }
  return fallback;
}

Value round(Renderer&, const Value& v, Args& args) {
  ArgBinder a(args, "round", {"precision", "method"});
  int64_t precision = a.given(0) ? to_index(a[0], "round") : 0;
  std::string method = a.given(1) ? to_str(a[1]) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    runtime_fail("method must be common, ceil or floor");
  if (!v.is_number()) {
    require_defined(v);
    runtime_fail("type ", type_name(v), " doesn't define __round__ method");
  }
  if (precision > 300) precision = 300;
  if (precision < -300) precision = -300;
  if (method == "common") {
    if (!v.is_float()) {
      if (precision >= 0) return Value(v.as_int());
      double p = std::pow(10.0, double(-precision));
      double r = std::nearbyint(double(v.as_int()) / p) * p;
      if (!(std::fabs(r) < 9.2e18)) runtime_fail("integer overflow");
      return Value(int64_t(r));
    }
    double d = v.as_float();
    if (!std::isfinite(d)) return Value(d);
    if (precision >= 0) {
      // printf rounds the exact binary value half-to-even, as Python's round() does.
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", int(std::min<int64_t>(precision, 300)), d);
      return Value(std::strtod(buf, nullptr));
    }
    double p = std::pow(10.0, double(-precision));
    return Value(std::nearbyint(d / p) * p);
  }
  double p = std::pow(10.0, double(precision));
  double x = v.as_float() * p;
  double rv = method == "ceil" ? std::ceil(x) : std::floor(x);
  return Value(rv / p);
}

// transformers replaces Jinja's tojson with json.dumps(x, ensure_ascii=False, indent=indent,
// separators=separators, sort_keys=sort_keys): no HTML escaping, and the options pass through.
Value tojson(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  DumpsOptions o;
  o.ensure_ascii = a.given(0) && truthy(a[0]);
  if (a.given(1) && !a[1].is_none()) {
    if (a[1].is_string()) {
      o.indent = a[1].str();
    } else {
      int64_t w = to_index(a[1], "tojson indent");
      if (w > 1024) runtime_fail("tojson indent too large");
      o.indent = std::string(size_t(std::max<int64_t>(w, 0)), ' ');
    }
  }
  if (a.given(2) && !a[2].is_none()) {
    const Value& s = a[2];
    if (!s.is_sequence() || s.items().size() != 2 || !s.items()[0].is_string() || !s.items()[1].is_string())
      runtime_fail("tojson separators must be a pair of strings");
    o.item_separator = s.items()[0].str();
    o.key_separator = s.items()[1].str();
  }
  o.sort_keys = a.given(3) && truthy(a[3]);
  std::string out = dumps(v, o);
  if (out.size() > r.max_len()) runtime_fail("tojson result exceeds the size limit");
  return Value(std::move(out));
}

Value default_(Renderer&, const Value& v, Args& args) {
  ArgBinder a(args, "default", {"default_value", "boolean"});
  bool boolean = a.given(1) && truthy(a[1]);
  if (v.is_undefined() || (boolean && !truthy(v))) return a.get(0, Value(""));
  return v;
}

// Python getattr only (no item fallback): methods, namespace attributes and host object attributes.
Value attr(Renderer&, const Value& v, Args& args) {
  ArgBinder a(args, "attr", {"name"});
  require_defined(v);
  std::string name = to_str(a[0]);
  Value out;
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return Value::undefined("unsafe attribute '" + name + "'");
  if ((v.is_string() || v.is_sequence() || v.is_dict()) && find_method(v, name, out)) return out;
  if (v.is_namespace()) {
    if (const Value* x = v.dict_data().find_key(name)) return *x;
  }
  if (v.is_object() && v.obj().attr(name, out)) return out;
  return Value::undefined(cat("'", type_name(v), " object' has no attribute '", name, "'"));
}

}  // namespace mmfp4::jinja::filters
