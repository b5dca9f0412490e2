#include "tokenizer/jinja/format.h"

#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/python_ops.h"
#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja {

namespace {

struct Spec {
  char fill = ' ';
  char align = 0;  // < > ^ =
  char sign = 0;   // + - space
  bool alt = false, zero = false, left = false, grouping = false;
  int64_t width = -1, precision = -1;
  char type = 0;
};

void pad(std::string& s, const Spec& sp, bool numeric, size_t max_len) {
  if (sp.width < 0) return;
  size_t len = utf8::length(s);
  if (size_t(sp.width) <= len) return;
  if (size_t(sp.width) > max_len) runtime_fail("format width exceeds the size limit");
  size_t n = size_t(sp.width) - len;
  char align = sp.align ? sp.align : (sp.left ? '<' : numeric ? '>' : '<');
  if (align == '<') {
    s.append(n, sp.fill);
  } else if (align == '>') {
    s.insert(0, n, sp.fill);
  } else if (align == '^') {
    s.insert(0, n / 2, sp.fill);
    s.append(n - n / 2, sp.fill);
  } else {  // '=': after the sign
    size_t at = (!s.empty() && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) ? 1 : 0;
    s.insert(at, n, sp.fill);
  }
}

double as_real(const Value& v, char conv) {
  if (v.is_number()) return v.as_float();
  if (v.is_string()) {
    // %f of a str is a TypeError in Python, matched here.
  }
  require_defined(v);
  runtime_fail("%", conv, " format: a real number is required, not ", type_name(v));
}

std::string c_format(const Spec& sp, char conv, double d, bool is_int, int64_t i) {
  std::string f = "%";
  if (sp.left) f += '-';
  if (sp.sign == '+') f += '+';
  if (sp.sign == ' ') f += ' ';
  if (sp.alt) f += '#';
  if (sp.zero && !sp.left) f += '0';
  if (sp.width >= 0) f += std::to_string(std::min<int64_t>(sp.width, 4096));
  if (sp.precision >= 0) {
    f += '.';
    f += std::to_string(std::min<int64_t>(sp.precision, 1024));
  }
  char buf[8192];
  if (is_int) {
    f += "ll";
    f += conv;
    if (conv == 'd' || conv == 'i')
      std::snprintf(buf, sizeof buf, f.c_str(), static_cast<long long>(i));
    else  // x, X, o take unsigned arguments
      std::snprintf(buf, sizeof buf, f.c_str(), static_cast<unsigned long long>(i));
  } else {
    f += conv;
    std::snprintf(buf, sizeof buf, f.c_str(), d);
  }
  return buf;
}

// One %-conversion of value v.
std::string convert(const Spec& sp, char conv, const Value& v, size_t max_len) {
  switch (conv) {
    case 's':
    case 'r':
    case 'a': {
      std::string s = conv == 's' ? to_str(v) : repr(v);
      if (sp.precision >= 0) {
        auto offs = utf8::offsets(s);
        if (size_t(sp.precision) + 1 < offs.size()) s.resize(offs[size_t(sp.precision)]);
      }
      Spec p = sp;
      p.align = sp.left ? '<' : '>';
      pad(s, p, false, max_len);
      return s;
    }
    case 'd':
    case 'i':
    case 'u': {
      if (!v.is_number()) {
        require_defined(v);
        runtime_fail("%", conv, " format: a real number is required, not ", type_name(v));
      }
      double d = v.as_float();
      if (v.is_float() && !std::isfinite(d)) runtime_fail("cannot convert float ", format_float(d), " to integer");
      if (v.is_float() && std::fabs(d) >= 9.2e18) runtime_fail("integer overflow");
      int64_t i = v.is_float() ? int64_t(std::trunc(d)) : v.as_int();
      if (sp.width > int64_t(max_len)) runtime_fail("format width exceeds the size limit");
      return c_format(sp, 'd', 0, true, i);
    }
    case 'x':
    case 'X':
    case 'o': {
      if (!(v.is_int() || v.is_bool())) {
        require_defined(v);
        runtime_fail("%", conv, " format: an integer is required, not ", type_name(v));
      }
      int64_t i = v.as_int();
      if (sp.width > int64_t(max_len)) runtime_fail("format width exceeds the size limit");
      if (i >= 0) return c_format(sp, conv, 0, true, i);
      // C formats the two's complement; Python writes a sign and the magnitude.
      Spec q = sp;
      q.width = -1;
      std::string s = "-";
      s += c_format(q, conv, 0, true, int64_t(uint64_t(0) - uint64_t(i)));
      pad(s, sp, true, max_len);
      return s;
    }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G': {
      double d = as_real(v, conv);
      if (sp.width > int64_t(max_len)) runtime_fail("format width exceeds the size limit");
      return c_format(sp, conv, d, false, 0);
    }
    case 'c': {
      std::string s;
      if (v.is_string() && utf8::length(v.str()) == 1) s = v.str();
      else if (v.is_int()) {
        if (v.as_int() < 0 || v.as_int() > 0x10FFFF) runtime_fail("%c arg not in range(0x110000)");
        utf8::append(s, uint32_t(v.as_int()));
      } else runtime_fail("%c requires int or char");
      pad(s, sp, false, max_len);
      return s;
    }
    default: runtime_fail("unsupported format character '", conv, "'");
  }
}

}  // namespace

std::string percent_format(const std::string& fmt, const Value& args, size_t max_len) {
  std::vector<Value> list;
  const Value* mapping = nullptr;
  if (args.is_tuple()) list = args.items();
  else if (args.is_dict()) mapping = &args, list.push_back(args);
  else list.push_back(args);
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  auto take = [&]() -> const Value& {
    if (next >= list.size()) runtime_fail("not enough arguments for format string");
    return list[next++];
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (++i >= fmt.size()) runtime_fail("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    const Value* key_value = nullptr;
    Value keyed;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) runtime_fail("incomplete format key");
      if (!mapping) runtime_fail("format requires a mapping");
      std::string key = fmt.substr(i + 1, close - i - 1);
      const Value* v = mapping->dict_data().find_key(key);
      if (!v) runtime_fail("KeyError: ", repr_string(key));
      keyed = *v;
      key_value = &keyed;
      used_mapping = true;
      i = close + 1;
    }
    Spec sp;
    for (; i < fmt.size(); ++i) {
      char f = fmt[i];
      if (f == '-') sp.left = true;
      else if (f == '+') sp.sign = '+';
      else if (f == ' ') { if (sp.sign != '+') sp.sign = ' '; }
      else if (f == '#') sp.alt = true;
      else if (f == '0') sp.zero = true;
      else break;
    }
    auto number = [&](int64_t& dst) {
      if (i < fmt.size() && fmt[i] == '*') {
        const Value& w = take();
        if (!w.is_int()) runtime_fail("* wants int");
        dst = w.as_int();
        if (dst < 0) { sp.left = true; dst = -dst; }
        ++i;
        return;
      }
      if (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) {
        dst = 0;
        while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) {
          dst = dst * 10 + (fmt[i++] - '0');
          if (dst > int64_t(max_len)) runtime_fail("format width exceeds the size limit");
        }
      }
    };
    number(sp.width);
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      sp.precision = 0;
      number(sp.precision);
    }
    while (i < fmt.size() && (fmt[i] == 'l' || fmt[i] == 'h' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) runtime_fail("incomplete format");
    char conv = fmt[i];
    const Value& v = key_value ? *key_value : take();
    out += convert(sp, conv, v, max_len);
    if (out.size() > max_len) runtime_fail("string exceeds the size limit");
  }
  if (!used_mapping && next < list.size() && !mapping)
    runtime_fail("not all arguments converted during string formatting");
  return out;
}

namespace {

// Parses a str.format spec: [[fill]align][sign][#][0][width][,][.precision][type]
Spec parse_format_spec(const std::string& s) {
  Spec sp;
  size_t i = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (s.size() >= 2 && is_align(s[1])) {
    sp.fill = s[0];
    sp.align = s[1];
    i = 2;
  } else if (!s.empty() && is_align(s[0])) {
    sp.align = s[0];
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) sp.sign = s[i++];
  if (i < s.size() && s[i] == '#') sp.alt = true, ++i;
  if (i < s.size() && s[i] == '0') {
    sp.zero = true;
    if (!sp.align) sp.fill = '0', sp.align = '=';
    ++i;
  }
  if (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    sp.width = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) sp.width = sp.width * 10 + (s[i++] - '0');
  }
  if (i < s.size() && s[i] == ',') sp.grouping = true, ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    sp.precision = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      sp.precision = sp.precision * 10 + (s[i++] - '0');
  }
  if (i < s.size()) sp.type = s[i++];
  if (i != s.size() || sp.grouping) runtime_fail("unsupported format spec '", s, "'");
  return sp;
}

std::string apply_spec(const Value& v, const std::string& spec_text, size_t max_len) {
  if (spec_text.empty()) return to_str(v);
  Spec sp = parse_format_spec(spec_text);
  if (sp.width > int64_t(max_len)) runtime_fail("format width exceeds the size limit");
  std::string s;
  bool numeric = v.is_number();
  char t = sp.type;
  if (t == 0 || t == 's') {
    if (t == 's' && !v.is_string()) runtime_fail("Unknown format code 's' for object of type '", type_name(v), "'");
    if (v.is_float() && t == 0 && sp.precision >= 0) {
      Spec c = sp;
      c.width = -1;
      c.zero = false;
      s = c_format(c, 'g', v.as_float(), false, 0);
    } else {
      s = to_str(v);
      if (sp.precision >= 0 && v.is_string()) {
        auto offs = utf8::offsets(s);
        if (size_t(sp.precision) + 1 < offs.size()) s.resize(offs[size_t(sp.precision)]);
      }
      if (numeric && sp.sign == '+' && s[0] != '-') s = "+" + s;
    }
  } else if (t == 'd' || t == 'x' || t == 'X' || t == 'o' || t == 'b') {
    if (!(v.is_int() || v.is_bool())) runtime_fail("Unknown format code '", t, "' for object of type '", type_name(v), "'");
    int64_t i = v.as_int();
    if (t == 'b') {
      uint64_t u = i < 0 ? uint64_t(0) - uint64_t(i) : uint64_t(i);
      std::string bits;
      do { bits.insert(bits.begin(), char('0' + (u & 1))); u >>= 1; } while (u);
      s.clear();
      if (i < 0) s += '-';
      else if (sp.sign == '+') s += '+';
      if (sp.alt) s += "0b";
      s += bits;
    } else {
      Spec c;
      c.sign = sp.sign;
      c.alt = sp.alt;
      s = c_format(c, t, 0, true, i);
    }
  } else if (t == 'f' || t == 'F' || t == 'e' || t == 'E' || t == 'g' || t == 'G' || t == '%') {
    if (!v.is_number()) runtime_fail("Unknown format code '", t, "' for object of type '", type_name(v), "'");
    Spec c;
    c.sign = sp.sign;
    c.alt = sp.alt;
    c.precision = sp.precision >= 0 ? sp.precision : (t == 'g' || t == 'G') ? -1 : 6;
    if (t == '%') {
      s = c_format(c, 'f', v.as_float() * 100, false, 0) + "%";
    } else {
      s = c_format(c, t, v.as_float(), false, 0);
    }
  } else {
    runtime_fail("unsupported format code '", t, "'");
  }
  pad(s, sp, numeric, max_len);
  return s;
}

}  // namespace

std::string str_format(const std::string& fmt, const Args& args, size_t max_len) {
  std::string out;
  size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      runtime_fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) runtime_fail("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    std::string spec, conv;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      conv = field.substr(bang + 1);
      field.resize(bang);
    }
    // field: "" | digits | name, optionally followed by .attr or [key] parts
    size_t end = field.find_first_of(".[");
    std::string head = field.substr(0, end);
    Value v;
    if (head.empty()) {
      if (used_manual) runtime_fail("cannot switch from manual field specification to automatic field numbering");
      used_auto = true;
      if (auto_index >= args.positional.size()) runtime_fail("Replacement index ", auto_index, " out of range");
      v = args.positional[auto_index++];
    } else if (std::isdigit(static_cast<unsigned char>(head[0]))) {
      if (used_auto) runtime_fail("cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      size_t idx = std::stoul(head.substr(0, 9));
      if (idx >= args.positional.size()) runtime_fail("Replacement index ", idx, " out of range");
      v = args.positional[idx];
    } else {
      bool found = false;
      for (const auto& [k, x] : args.keyword)
        if (k == head) v = x, found = true;
      if (!found) runtime_fail("KeyError: ", repr_string(head));
    }
    while (end != std::string::npos && end < field.size()) {
      if (field[end] == '.') {
        size_t nxt = field.find_first_of(".[", end + 1);
        v = get_attr(v, field.substr(end + 1, nxt == std::string::npos ? std::string::npos : nxt - end - 1));
        end = nxt;
      } else {
        size_t rb = field.find(']', end);
        if (rb == std::string::npos) runtime_fail("Missing ']' in format string");
        std::string key = field.substr(end + 1, rb - end - 1);
        Value k = !key.empty() && std::isdigit(static_cast<unsigned char>(key[0])) ? Value(int64_t(std::stoll(key.substr(0, 18)))) : Value(key);
        v = get_item(v, k);
        end = rb + 1 < field.size() ? rb + 1 : std::string::npos;
      }
    }
    require_defined(v);
    if (conv == "r" || conv == "a") v = Value(repr(v));
    else if (conv == "s") v = Value(to_str(v));
    else if (!conv.empty()) runtime_fail("Unknown conversion specifier ", conv);
    out += apply_spec(v, spec, max_len);
    if (out.size() > max_len) runtime_fail("string exceeds the size limit");
  }
  return out;
}

}  // namespace mmfp4::jinja
