// Jinja2's builtin tests (`x is defined`, `x is divisibleby 3`, `select("equalto", 1)`).
#include <cmath>

#include "tokenizer/jinja/builtin_util.h"
#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja {

namespace {

const Value& arg0(const Args& args, const char* name) {
  if (args.positional.size() != 1 || !args.keyword.empty()) runtime_fail("test '", name, "' takes one argument");
  return args.positional[0];
}
void no_args(const Args& args, const char* name) {
  if (!args.positional.empty() || !args.keyword.empty()) runtime_fail("test '", name, "' takes no arguments");
}

#define SIMPLE_TEST(fname, expr)                             \
  bool fname(Renderer&, const Value& v, Args& args) {        \
    no_args(args, &#fname[5]);  /* "test_defined" -> "defined" */ \
    return (expr);                                           \
  }

SIMPLE_TEST(test_defined, !v.is_undefined())
SIMPLE_TEST(test_undefined, v.is_undefined())
SIMPLE_TEST(test_none, v.is_none())
SIMPLE_TEST(test_boolean, v.is_bool())
SIMPLE_TEST(test_false, v.is_bool() && !v.as_bool())
SIMPLE_TEST(test_true, v.is_bool() && v.as_bool())
SIMPLE_TEST(test_integer, v.is_int())
SIMPLE_TEST(test_float, v.is_float())
SIMPLE_TEST(test_number, v.is_number())
SIMPLE_TEST(test_string, v.is_string())
SIMPLE_TEST(test_mapping, v.is_dict())
// Undefined iterates as empty and has len() and [] (which fail), so Jinja calls it iterable and a sequence.
SIMPLE_TEST(test_iterable, v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined() || v.is_iterator() ||
                               (v.is_object() && v.obj().type_name() == "LoopContext"))
SIMPLE_TEST(test_sequence, v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined())
// Undefined defines __call__ (to raise), so Python's callable() says yes.
SIMPLE_TEST(test_callable, (v.is_object() && v.obj().callable()) || v.is_undefined())
SIMPLE_TEST(test_escaped, false)

bool is_lower_str(const std::string& s, bool want_lower) {
  bool cased = false;
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = utf8::next(s, i);
    if (want_lower ? utf8::is_upper(cp) : (utf8::is_lower(cp))) return false;
    if (utf8::is_upper(cp) || utf8::is_lower(cp)) cased = true;
  }
  return cased;
}

bool test_lower(Renderer&, const Value& v, Args& args) {
  no_args(args, "lower");
  return is_lower_str(to_str(v), true);
}
bool test_upper(Renderer&, const Value& v, Args& args) {
  no_args(args, "upper");
  return is_lower_str(to_str(v), false);
}

bool int_mod_zero(const Value& v, const Value& m) {
  Value r = mod(v, m, 1 << 20);
  return equals(r, Value(int64_t(0)));
}

bool test_odd(Renderer&, const Value& v, Args& args) {
  no_args(args, "odd");
  return equals(mod(v, Value(int64_t(2)), 1 << 20), Value(int64_t(1)));
}
bool test_even(Renderer&, const Value& v, Args& args) {
  no_args(args, "even");
  return int_mod_zero(v, Value(int64_t(2)));
}
bool test_divisibleby(Renderer&, const Value& v, Args& args) { return int_mod_zero(v, arg0(args, "divisibleby")); }

// `sameas`: Python identity. Containers compare by object; None/True/False, numbers and strings by value (CPython
// interns the constants templates compare).
bool test_sameas(Renderer&, const Value& v, Args& args) {
  const Value& o = arg0(args, "sameas");
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Kind::List:
    case Kind::Tuple:
    case Kind::Dict:
    case Kind::Namespace:
    case Kind::Object: return v.identity() == o.identity();
    default: return equals(v, o);
  }
}

bool test_eq(Renderer&, const Value& v, Args& args) { return equals(v, arg0(args, "eq")); }
bool test_ne(Renderer&, const Value& v, Args& args) { return !equals(v, arg0(args, "ne")); }
bool test_lt(Renderer&, const Value& v, Args& args) { return less(v, arg0(args, "lt"), "<"); }
bool test_gt(Renderer&, const Value& v, Args& args) { return less(arg0(args, "gt"), v, ">"); }
bool test_le(Renderer&, const Value& v, Args& args) {
  const Value& o = arg0(args, "le");
  return less(v, o, "<=") || equals(v, o);
}
bool test_ge(Renderer&, const Value& v, Args& args) {
  const Value& o = arg0(args, "ge");
  return less(o, v, ">=") || equals(v, o);
}
bool test_in(Renderer&, const Value& v, Args& args) { return contains(arg0(args, "in"), v); }
bool test_filter(Renderer&, const Value& v, Args& args) {
  no_args(args, "filter");
  return v.is_string() && find_filter(v.str()) != nullptr;
}
bool test_test(Renderer&, const Value& v, Args& args) {
  no_args(args, "test");
  return v.is_string() && find_test(v.str()) != nullptr;
}

struct Entry {
  const char* name;
  TestFn fn;
};

const Entry kTests[] = {
    {"defined", test_defined},   {"undefined", test_undefined},
    {"none", test_none},         {"boolean", test_boolean},
    {"false", test_false},       {"true", test_true},
    {"integer", test_integer},   {"float", test_float},
    {"number", test_number},     {"string", test_string},
    {"mapping", test_mapping},   {"iterable", test_iterable},
    {"sequence", test_sequence}, {"callable", test_callable},
    {"escaped", test_escaped},   {"lower", test_lower},
    {"upper", test_upper},       {"odd", test_odd},
    {"even", test_even},         {"divisibleby", test_divisibleby},
    {"sameas", test_sameas},     {"eq", test_eq},
    {"equalto", test_eq},        {"==", test_eq},
    {"ne", test_ne},             {"!=", test_ne},
    {"lt", test_lt},             {"lessthan", test_lt},
    {"<", test_lt},              {"le", test_le},
    {"<=", test_le},             {"gt", test_gt},
    {"greaterthan", test_gt},    {">", test_gt},
    {"ge", test_ge},             {">=", test_ge},
    {"in", test_in},             {"filter", test_filter},
    {"test", test_test},
};

}  // namespace

TestFn find_test(std::string_view name) {
  for (const Entry& e : kTests)
    if (name == e.name) return e.fn;
  return nullptr;
}

}  // namespace mmfp4::jinja
