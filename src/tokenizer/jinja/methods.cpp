// Python methods of str, list and dict values that templates call: message.content.split('</think>'),
// tool.items(), text.startswith(('a', 'b')). Positions and lengths count code points, as Python's do.
// list.append/extend/insert/pop and dict.update/pop/setdefault mutate in place; transformers' immutable sandbox
// forbids them, but templates written for other engines use them, so they are accepted (a strict superset).
#include <algorithm>

#include "tokenizer/jinja/builtin_util.h"
#include "tokenizer/jinja/format.h"
#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja {

namespace {

using Method = Value (*)(Renderer&, const Value&, Args&);

// Optional start/end arguments of find/count/startswith: code point positions clamped like slices.
std::string_view sub_range(const std::string& s, const ArgBinder& a, size_t first, std::vector<size_t>& offs) {
  if (!(a.given(first) && !a[first].is_none()) && !(a.given(first + 1) && !a[first + 1].is_none())) return s;
  offs = utf8::offsets(s);
  int64_t n = int64_t(offs.size()) - 1;
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (!v.is_int() && !v.is_bool()) return dflt;
    int64_t i = v.as_int();
    if (i < 0) i = std::max<int64_t>(0, i + n);
    return std::min(i, n);
  };
  int64_t lo = a.given(first) ? clamp(a[first], 0) : 0;
  int64_t hi = a.given(first + 1) ? clamp(a[first + 1], n) : n;
  if (hi < lo) return std::string_view(s).substr(s.size(), 0);
  return std::string_view(s).substr(offs[size_t(lo)], offs[size_t(hi)] - offs[size_t(lo)]);
}

int64_t cp_index(const std::string& s, size_t byte_pos) { return int64_t(utf8::length(std::string_view(s).substr(0, byte_pos))); }

std::vector<std::string> prefixes(const Value& v, const char* name) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.str());
  } else if (v.is_tuple()) {
    for (const Value& x : v.items()) out.push_back(str_arg(x, name));
  } else {
    require_defined(v);
    runtime_fail(name, " first arg must be str or a tuple of str, not ", type_name(v));
  }
  return out;
}

// ---- str ----

Value s_strip_impl(const Value& self, Args& args, const char* name, bool l, bool r) {
  ArgBinder a(args, name, {"chars"});
  if (a.given(0) && !a[0].is_none()) {
    std::string chars = str_arg(a[0], name);
    return Value(std::string(utf8::strip(self.str(), &chars, l, r)));
  }
  return Value(std::string(utf8::strip(self.str(), nullptr, l, r)));
}
Value s_strip(Renderer&, const Value& self, Args& args) { return s_strip_impl(self, args, "strip", true, true); }
Value s_lstrip(Renderer&, const Value& self, Args& args) { return s_strip_impl(self, args, "lstrip", true, false); }
Value s_rstrip(Renderer&, const Value& self, Args& args) { return s_strip_impl(self, args, "rstrip", false, true); }

// Python str.split / rsplit: with no separator, runs of whitespace separate and ends are dropped.
Value split_impl(Renderer& r, const Value& self, Args& args, bool from_right, const char* name) {
  ArgBinder a(args, name, {"sep", "maxsplit"});
  const std::string& s = self.str();
  int64_t maxsplit = a.given(1) ? to_index(a[1], name) : -1;
  std::vector<std::string> parts;
  if (!a.given(0) || a[0].is_none()) {
    std::vector<std::pair<size_t, size_t>> words;  // byte ranges
    size_t i = 0;
    while (i < s.size()) {
      size_t j = i;
      if (utf8::is_space(utf8::next(s, j))) {
        i = j;
        continue;
      }
      size_t start = i;
      while (i < s.size()) {
        size_t k = i;
        if (utf8::is_space(utf8::next(s, k))) break;
        i = k;
      }
      words.emplace_back(start, i);
    }
    if (maxsplit < 0 || size_t(maxsplit) >= words.size()) {
      for (auto& w : words) parts.push_back(s.substr(w.first, w.second - w.first));
    } else if (!from_right) {
      for (int64_t k = 0; k < maxsplit; ++k) parts.push_back(s.substr(words[size_t(k)].first, words[size_t(k)].second - words[size_t(k)].first));
      std::string rest = s.substr(words[size_t(maxsplit)].first);
      parts.push_back(std::move(rest));  // Python keeps trailing whitespace of the rest
    } else {
      size_t keep = words.size() - size_t(maxsplit);
      std::string head = s.substr(0, words[keep - 1].second);
      parts.push_back(std::move(head));
      for (size_t k = keep; k < words.size(); ++k) parts.push_back(s.substr(words[k].first, words[k].second - words[k].first));
    }
  } else {
    std::string sep = str_arg(a[0], name);
    if (sep.empty()) runtime_fail("empty separator");
    if (!from_right) {
      size_t pos = 0;
      int64_t done = 0;
      while (maxsplit < 0 || done < maxsplit) {
        size_t hit = s.find(sep, pos);
        if (hit == std::string::npos) break;
        parts.push_back(s.substr(pos, hit - pos));
        pos = hit + sep.size();
        ++done;
      }
      parts.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      int64_t done = 0;
      std::vector<std::string> rev;
      while (maxsplit < 0 || done < maxsplit) {
        if (end < sep.size()) break;
        size_t hit = s.rfind(sep, end - sep.size());
        if (hit == std::string::npos) break;
        rev.push_back(s.substr(hit + sep.size(), end - hit - sep.size()));
        end = hit;
        ++done;
      }
      rev.push_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
  }
  r.charge(parts.size());
  std::vector<Value> out;
  out.reserve(parts.size());
  for (auto& p : parts) out.emplace_back(std::move(p));
  return Value::list(std::move(out));
}
Value s_split(Renderer& r, const Value& self, Args& args) { return split_impl(r, self, args, false, "split"); }
Value s_rsplit(Renderer& r, const Value& self, Args& args) { return split_impl(r, self, args, true, "rsplit"); }

Value s_splitlines(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "splitlines", {"keepends"});
  bool keep = a.given(0) && truthy(a[0]);
  const std::string& s = self.str();
  std::vector<Value> out;
  size_t i = 0, start = 0;
  while (i < s.size()) {
    size_t at = i;
    uint32_t cp = utf8::next(s, i);
    bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
               cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!brk) continue;
    if (cp == '\r' && i < s.size() && s[i] == '\n') ++i;
    out.emplace_back(s.substr(start, (keep ? i : at) - start));
    start = i;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  r.charge(out.size());
  return Value::list(std::move(out));
}

Value starts_ends(const Value& self, Args& args, bool ends, const char* name) {
  ArgBinder a(args, name, {"prefix", "start", "end"});
  std::vector<size_t> offs;
  std::string_view s = sub_range(self.str(), a, 1, offs);
  for (const std::string& p : prefixes(a[0], name)) {
    if (p.size() > s.size()) continue;
    if (ends ? s.substr(s.size() - p.size()) == p : s.substr(0, p.size()) == p) return Value(true);
  }
  return Value(false);
}
Value s_startswith(Renderer&, const Value& self, Args& args) { return starts_ends(self, args, false, "startswith"); }
Value s_endswith(Renderer&, const Value& self, Args& args) { return starts_ends(self, args, true, "endswith"); }

Value find_impl(const Value& self, Args& args, bool right, bool raise, const char* name) {
  ArgBinder a(args, name, {"sub", "start", "end"});
  std::string sub = str_arg(a[0], name);
  const std::string& s = self.str();
  std::vector<size_t> offs;
  std::string_view range = sub_range(s, a, 1, offs);
  size_t base = size_t(range.data() - s.data());
  size_t hit = right ? range.rfind(sub) : range.find(sub);
  if (hit == std::string_view::npos) {
    if (raise) runtime_fail("substring not found");
    return Value(int64_t(-1));
  }
  return Value(cp_index(s, base + hit));
}
Value s_find(Renderer&, const Value& self, Args& args) { return find_impl(self, args, false, false, "find"); }
Value s_rfind(Renderer&, const Value& self, Args& args) { return find_impl(self, args, true, false, "rfind"); }
Value s_index(Renderer&, const Value& self, Args& args) { return find_impl(self, args, false, true, "index"); }
Value s_rindex(Renderer&, const Value& self, Args& args) { return find_impl(self, args, true, true, "rindex"); }

Value s_count(Renderer&, const Value& self, Args& args) {
  ArgBinder a(args, "count", {"sub", "start", "end"});
  std::string sub = str_arg(a[0], "count");
  std::vector<size_t> offs;
  std::string_view s = sub_range(self.str(), a, 1, offs);
  if (sub.empty()) return Value(int64_t(utf8::length(s) + 1));
  int64_t n = 0;
  for (size_t p = s.find(sub); p != std::string_view::npos; p = s.find(sub, p + sub.size())) ++n;
  return Value(n);
}

Value s_replace(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "replace", {"old", "new", "count"});
  Args fa;
  fa.positional = {Value(str_arg(a[0], "replace() argument 1")), Value(str_arg(a[1], "replace() argument 2"))};
  if (a.given(2)) fa.positional.push_back(a[2]);
  return find_filter("replace")(r, self, fa);
}

Value s_join(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "join", {"iterable"});
  std::string out;
  size_t i = 0;
  for (const Value& x : iterate(a[0])) {
    if (!x.is_string()) runtime_fail("sequence item ", i, ": expected str instance, ", type_name(x), " found");
    if (i++) out += self.str();
    out += x.str();
    if (out.size() > r.max_len()) runtime_fail("join result exceeds the size limit");
  }
  return Value(std::move(out));
}

#define CASE_METHOD(fname, fn)                               \
  Value fname(Renderer&, const Value& self, Args& args) {    \
    ArgBinder(args, #fn, {});                                \
    return Value(utf8::fn(self.str()));                      \
  }
CASE_METHOD(s_upper, upper)
CASE_METHOD(s_lower, lower)
CASE_METHOD(s_title, title)
CASE_METHOD(s_capitalize, capitalize)
CASE_METHOD(s_swapcase, swapcase)
CASE_METHOD(s_casefold, lower)

template <bool (*Pred)(uint32_t)>
Value all_chars(const Value& self, Args& args, const char* name) {
  ArgBinder(args, name, {});
  const std::string& s = self.str();
  if (s.empty()) return Value(false);
  size_t i = 0;
  while (i < s.size())
    if (!Pred(utf8::next(s, i))) return Value(false);
  return Value(true);
}
bool is_alnum_cp(uint32_t c) { return utf8::is_alpha(c) || utf8::is_digit(c); }
Value s_isalpha(Renderer&, const Value& self, Args& args) { return all_chars<utf8::is_alpha>(self, args, "isalpha"); }
Value s_isdigit(Renderer&, const Value& self, Args& args) { return all_chars<utf8::is_digit>(self, args, "isdigit"); }
Value s_isalnum(Renderer&, const Value& self, Args& args) { return all_chars<is_alnum_cp>(self, args, "isalnum"); }
Value s_isspace(Renderer&, const Value& self, Args& args) { return all_chars<utf8::is_space>(self, args, "isspace"); }

Value cased_check(const Value& self, Args& args, bool lower, const char* name) {
  ArgBinder(args, name, {});
  bool cased = false;
  const std::string& s = self.str();
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = utf8::next(s, i);
    if (lower ? utf8::is_upper(cp) : utf8::is_lower(cp)) return Value(false);
    cased = cased || utf8::is_upper(cp) || utf8::is_lower(cp);
  }
  return Value(cased);
}
Value s_islower(Renderer&, const Value& self, Args& args) { return cased_check(self, args, true, "islower"); }
Value s_isupper(Renderer&, const Value& self, Args& args) { return cased_check(self, args, false, "isupper"); }

Value justify(Renderer& r, const Value& self, Args& args, char how, const char* name) {
  ArgBinder a(args, name, {"width", "fillchar"});
  int64_t width = to_index(a[0], name);
  std::string fill = a.given(1) ? str_arg(a[1], name) : " ";
  if (utf8::length(fill) != 1) runtime_fail("The fill character must be exactly one character long");
  const std::string& s = self.str();
  int64_t len = int64_t(utf8::length(s));
  if (width <= len) return self;
  if (uint64_t(width) * fill.size() > r.max_len()) runtime_fail(name, " width exceeds the size limit");
  int64_t marg = width - len;
  int64_t left = how == '<' ? 0 : how == '>' ? marg : marg / 2 + (marg & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += fill;
  return Value(std::move(out));
}
Value s_ljust(Renderer& r, const Value& self, Args& args) { return justify(r, self, args, '<', "ljust"); }
Value s_rjust(Renderer& r, const Value& self, Args& args) { return justify(r, self, args, '>', "rjust"); }
Value s_center(Renderer& r, const Value& self, Args& args) { return justify(r, self, args, '^', "center"); }

Value s_zfill(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "zfill", {"width"});
  int64_t width = to_index(a[0], "zfill");
  std::string s = self.str();
  int64_t len = int64_t(utf8::length(s));
  if (width <= len) return self;
  if (uint64_t(width) > r.max_len()) runtime_fail("zfill width exceeds the size limit");
  size_t at = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  s.insert(at, size_t(width - len), '0');
  return Value(std::move(s));
}

Value s_removeprefix(Renderer&, const Value& self, Args& args) {
  ArgBinder a(args, "removeprefix", {"prefix"});
  std::string p = str_arg(a[0], "removeprefix");
  const std::string& s = self.str();
  return s.compare(0, p.size(), p) == 0 ? Value(s.substr(p.size())) : self;
}
Value s_removesuffix(Renderer&, const Value& self, Args& args) {
  ArgBinder a(args, "removesuffix", {"suffix"});
  std::string p = str_arg(a[0], "removesuffix");
  const std::string& s = self.str();
  if (!p.empty() && s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
    return Value(s.substr(0, s.size() - p.size()));
  return self;
}

Value partition_impl(const Value& self, Args& args, bool right, const char* name) {
  ArgBinder a(args, name, {"sep"});
  std::string sep = str_arg(a[0], name);
  if (sep.empty()) runtime_fail("empty separator");
  const std::string& s = self.str();
  size_t hit = right ? s.rfind(sep) : s.find(sep);
  if (hit == std::string::npos) {
    if (right) return Value::tuple({Value(""), Value(""), self});
    return Value::tuple({self, Value(""), Value("")});
  }
  return Value::tuple({Value(s.substr(0, hit)), Value(sep), Value(s.substr(hit + sep.size()))});
}
Value s_partition(Renderer&, const Value& self, Args& args) { return partition_impl(self, args, false, "partition"); }
Value s_rpartition(Renderer&, const Value& self, Args& args) { return partition_impl(self, args, true, "rpartition"); }

Value s_format(Renderer& r, const Value& self, Args& args) { return Value(str_format(self.str(), args, r.max_len())); }

// ---- list ----

Value l_append(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "append", {"object"});
  if (!a.given(0)) runtime_fail("append() takes exactly one argument (0 given)");
  r.charge(1);
  self.items().push_back(a[0]);
  r.note_mutation(self);
  return Value::none();
}

Value l_extend(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "extend", {"iterable"});
  std::vector<Value> more = iterate(a[0]);
  r.charge(more.size());
  if (self.items().size() + more.size() > r.max_len()) runtime_fail("list exceeds the size limit");
  self.items().insert(self.items().end(), more.begin(), more.end());
  r.note_mutation(self);
  return Value::none();
}

Value l_insert(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "insert", {"index", "object"});
  int64_t i = to_index(a[0], "insert");
  auto& items = self.items();
  int64_t n = int64_t(items.size());
  if (i < 0) i = std::max<int64_t>(0, i + n);
  i = std::min(i, n);
  r.charge(1);
  items.insert(items.begin() + i, a[1]);
  r.note_mutation(self);
  return Value::none();
}

Value l_pop(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "pop", {"index"});
  auto& items = self.items();
  if (items.empty()) runtime_fail("pop from empty list");
  int64_t n = int64_t(items.size());
  int64_t i = a.given(0) ? to_index(a[0], "pop") : -1;
  if (i < 0) i += n;
  if (i < 0 || i >= n) runtime_fail("pop index out of range");
  Value v = items[size_t(i)];
  items.erase(items.begin() + i);
  r.note_mutation(self);
  return v;
}

Value l_index(Renderer&, const Value& self, Args& args) {
  ArgBinder a(args, "index", {"value"});
  const auto& items = self.items();
  for (size_t i = 0; i < items.size(); ++i)
    if (equals(items[i], a[0])) return Value(int64_t(i));
  runtime_fail(repr(a[0]), " is not in list");
}

Value l_count(Renderer&, const Value& self, Args& args) {
  ArgBinder a(args, "count", {"value"});
  int64_t n = 0;
  for (const Value& x : self.items())
    if (equals(x, a[0])) ++n;
  return Value(n);
}

Value l_copy(Renderer& r, const Value& self, Args& args) {
  ArgBinder(args, "copy", {});
  r.charge(self.items().size());
  return Value::list(self.items());
}

// ---- dict ----

Value d_items(Renderer& r, const Value& self, Args& args) {
  ArgBinder(args, "items", {});
  std::vector<Value> out;
  for (const auto& [k, v] : self.dict_data().entries()) out.push_back(Value::tuple({k, v}));
  r.charge(out.size());
  return Value::list(std::move(out));
}

Value d_keys(Renderer& r, const Value& self, Args& args) {
  ArgBinder(args, "keys", {});
  std::vector<Value> out;
  for (const auto& e : self.dict_data().entries()) out.push_back(e.first);
  r.charge(out.size());
  return Value::list(std::move(out));
}

Value d_values(Renderer& r, const Value& self, Args& args) {
  ArgBinder(args, "values", {});
  std::vector<Value> out;
  for (const auto& e : self.dict_data().entries()) out.push_back(e.second);
  r.charge(out.size());
  return Value::list(std::move(out));
}

Value d_get(Renderer&, const Value& self, Args& args) {
  ArgBinder a(args, "get", {"key", "default"});
  if (!a.given(0)) runtime_fail("get expected at least 1 argument, got 0");
  if (const Value* v = self.dict_data().find(a[0])) return *v;
  return a.get(1, Value::none());
}

Value d_copy(Renderer& r, const Value& self, Args& args) {
  ArgBinder(args, "copy", {});
  Value d = Value::dict();
  for (const auto& [k, v] : self.dict_data().entries()) d.dict_data().set(k, v);
  r.charge(self.dict_data().size());
  return d;
}

Value d_update(Renderer& r, const Value& self, Args& args) {
  dict_update(self.dict_data(), args, "update");
  r.charge(self.dict_data().size() / 16 + 1);
  r.note_mutation(self);
  return Value::none();
}

Value d_pop(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "pop", {"key", "default"});
  if (const Value* v = self.dict_data().find(a[0])) {
    Value out = *v;
    self.dict_data().erase(a[0]);
    r.note_mutation(self);
    return out;
  }
  if (a.given(1)) return a[1];
  runtime_fail("KeyError: ", repr(a[0]));
}

Value d_setdefault(Renderer& r, const Value& self, Args& args) {
  ArgBinder a(args, "setdefault", {"key", "default"});
  if (const Value* v = self.dict_data().find(a[0])) return *v;
  Value dflt = a.get(1, Value::none());
  self.dict_data().set(a[0], dflt);
  r.note_mutation(self);
  return dflt;
}

struct Entry {
  const char* name;
  Method fn;
};

const Entry kStrMethods[] = {
    {"strip", s_strip},           {"lstrip", s_lstrip},         {"rstrip", s_rstrip},
    {"split", s_split},           {"rsplit", s_rsplit},         {"splitlines", s_splitlines},
    {"startswith", s_startswith}, {"endswith", s_endswith},     {"find", s_find},
    {"rfind", s_rfind},           {"index", s_index},           {"rindex", s_rindex},
    {"count", s_count},           {"replace", s_replace},       {"join", s_join},
    {"upper", s_upper},           {"lower", s_lower},           {"title", s_title},
    {"capitalize", s_capitalize}, {"swapcase", s_swapcase},     {"casefold", s_casefold},
    {"isalpha", s_isalpha},       {"isdigit", s_isdigit},       {"isalnum", s_isalnum},
    {"isspace", s_isspace},       {"islower", s_islower},       {"isupper", s_isupper},
    {"ljust", s_ljust},           {"rjust", s_rjust},           {"center", s_center},
    {"zfill", s_zfill},           {"removeprefix", s_removeprefix}, {"removesuffix", s_removesuffix},
    {"partition", s_partition},   {"rpartition", s_rpartition}, {"format", s_format},
};

const Entry kListMethods[] = {
    {"append", l_append}, {"extend", l_extend}, {"insert", l_insert}, {"pop", l_pop},
    {"index", l_index},   {"count", l_count},   {"copy", l_copy},
};

const Entry kTupleMethods[] = {{"index", l_index}, {"count", l_count}};

const Entry kDictMethods[] = {
    {"items", d_items}, {"keys", d_keys},     {"values", d_values}, {"get", d_get},
    {"copy", d_copy},   {"update", d_update}, {"pop", d_pop},       {"setdefault", d_setdefault},
};

template <size_t N>
bool bind(const Entry (&table)[N], const Value& self, std::string_view name, Value& out) {
  for (const Entry& e : table) {
    if (name == e.name) {
      out = make_function(e.name, e.fn, self);
      return true;
    }
  }
  return false;
}

}  // namespace

bool find_method(const Value& self, std::string_view name, Value& out) {
  switch (self.kind()) {
    case Kind::String: return bind(kStrMethods, self, name, out);
    case Kind::List: return bind(kListMethods, self, name, out);
    case Kind::Tuple: return bind(kTupleMethods, self, name, out);
    case Kind::Dict: return bind(kDictMethods, self, name, out);
    default: return false;
  }
}

}  // namespace mmfp4::jinja
