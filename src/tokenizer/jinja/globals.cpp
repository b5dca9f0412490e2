// The global functions a template can call: Jinja2's range, dict, namespace, cycler and joiner, and the two
// transformers adds, raise_exception(msg) and strftime_now(fmt). range is capped at 100000 items like Jinja's
// sandbox (MAX_RANGE).
#include "tokenizer/jinja/builtin_util.h"
#include "tokenizer/jinja/strftime.h"

namespace mmfp4::jinja {

namespace {

constexpr int64_t kMaxRange = 100000;

Value g_range(Renderer& r, const Value&, Args& args) {
  if (!args.keyword.empty()) runtime_fail("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3) runtime_fail("range expected 1 to 3 arguments, got ", p.size());
  int64_t start = 0, stop, step = 1;
  if (p.size() == 1) {
    stop = to_index(p[0], "range");
  } else {
    start = to_index(p[0], "range");
    stop = to_index(p[1], "range");
    if (p.size() == 3) step = to_index(p[2], "range");
  }
  if (step == 0) runtime_fail("range() arg 3 must not be zero");
  // Count without overflow: work in 128 bits.
  __int128 span = step > 0 ? __int128(stop) - start : __int128(start) - stop;
  __int128 astep = step > 0 ? step : -__int128(step);
  __int128 n = span <= 0 ? 0 : (span + astep - 1) / astep;
  if (n > kMaxRange)
    runtime_fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (", kMaxRange, ").");
  r.charge(uint64_t(n));
  std::vector<Value> out;
  out.reserve(size_t(n));
  for (int64_t i = 0; i < int64_t(n); ++i) out.emplace_back(int64_t(__int128(start) + __int128(i) * step));
  return Value::list(std::move(out));
}

// dict(mapping or pairs, **kwargs); also the body of namespace(...).
Value build_dict(Renderer& r, Args& args, const char* name) {
  Value d = Value::dict();
  dict_update(d.dict_data(), args, name);
  r.charge(d.dict_data().size() + 1);
  return d;
}

Value g_dict(Renderer& r, const Value&, Args& args) { return build_dict(r, args, "dict"); }

Value g_namespace(Renderer& r, const Value&, Args& args) {
  Value d = build_dict(r, args, "namespace");
  Value ns = Value::namespace_object();
  for (const auto& [k, v] : d.dict_data().entries()) {
    if (!k.is_string()) runtime_fail("namespace attribute names must be strings");
    ns.dict_data().set(k, v);
  }
  return ns;
}

// Jinja's lipsum generates random text; a prompt must be deterministic, so it exists (`lipsum is defined` holds,
// as in Jinja) but refuses to run.
Value g_lipsum(Renderer&, const Value&, Args&) { runtime_fail("lipsum() is not supported: it produces random text"); }

Value g_raise_exception(Renderer&, const Value&, Args& args) {
  std::string msg = args.positional.empty() ? std::string() : to_str(args.positional[0]);
  throw RuntimeFailure(msg, /*raised=*/true);
}

Value g_strftime_now(Renderer& r, const Value&, Args& args) {
  ArgBinder a(args, "strftime_now", {"format"});
  std::string fmt = str_arg(a[0], "strftime_now() format");
  std::tm t = r.options().now ? *r.options().now : local_now();
  return Value(py_strftime(fmt, t));
}

// cycler(a, b, c): .next() walks the items round-robin; .current and .reset() as in Jinja.
class Cycler : public Object, public std::enable_shared_from_this<Cycler> {
 public:
  explicit Cycler(std::vector<Value> items) : items_(std::move(items)) {}
  std::string type_name() const override { return "Cycler"; }
  bool attr(std::string_view name, Value& out) const override {
    if (name == "current") {
      out = items_[pos_];
      return true;
    }
    if (name == "next") {
      out = make_function("next", &Cycler::next, Value::object(shared_from_this()));
      return true;
    }
    if (name == "reset") {
      out = make_function("reset", &Cycler::reset, Value::object(shared_from_this()));
      return true;
    }
    return false;
  }

 private:
  static Value next(Renderer&, const Value& self, Args&) {
    const auto& c = static_cast<const Cycler&>(self.obj());
    Value v = c.items_[c.pos_];
    c.pos_ = (c.pos_ + 1) % c.items_.size();
    return v;
  }
  static Value reset(Renderer&, const Value& self, Args&) {
    static_cast<const Cycler&>(self.obj()).pos_ = 0;
    return Value::none();
  }
  std::vector<Value> items_;
  mutable size_t pos_ = 0;
};

Value g_cycler(Renderer&, const Value&, Args& args) {
  if (args.positional.empty()) runtime_fail("at least one item has to be provided");
  return Value::object(std::make_shared<Cycler>(args.positional));
}

// joiner(sep): returns "" the first time it is called and sep afterwards.
class Joiner : public Object {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  std::string type_name() const override { return "Joiner"; }
  bool callable() const override { return true; }
  Value call(Renderer&, Args&) const override {
    if (!used_) {
      used_ = true;
      return Value("");
    }
    return Value(sep_);
  }

 private:
  std::string sep_;
  mutable bool used_ = false;
};

Value g_joiner(Renderer&, const Value&, Args& args) {
  ArgBinder a(args, "joiner", {"sep"});
  return Value::object(std::make_shared<Joiner>(a.given(0) ? to_str(a[0]) : ", "));
}

struct Entry {
  const char* name;
  NativeFn fn;
};

const Entry kGlobals[] = {
    {"range", g_range},   {"dict", g_dict},     {"namespace", g_namespace},
    {"cycler", g_cycler}, {"joiner", g_joiner}, {"raise_exception", g_raise_exception},
    {"strftime_now", g_strftime_now}, {"lipsum", g_lipsum},
};

}  // namespace

bool find_global(std::string_view name, Value& out) {
  for (const Entry& e : kGlobals) {
    if (name == e.name) {
      out = make_function(e.name, e.fn);
      return true;
    }
  }
  return false;
}

}  // namespace mmfp4::jinja
