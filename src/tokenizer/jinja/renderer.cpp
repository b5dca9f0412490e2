#include "tokenizer/jinja/renderer.h"

#include "tokenizer/jinja/python_ops.h"

namespace mmfp4::jinja {

// ---- Scope ----------------------------------------------------------------------------------------------------------

const Value* Scope::find(std::string_view name) const {
  for (const auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void Scope::set(std::string_view name, Value v) {
  for (auto& [k, x] : vars) {
    if (k == name) {
      x = std::move(v);
      return;
    }
  }
  vars.emplace_back(std::string(name), std::move(v));
}

namespace {

// ---- host objects made by the interpreter ---------------------------------------------------------------------------

class MacroObject : public Object {
 public:
  MacroObject(const MacroStmt* m, std::shared_ptr<Scope> closure) : m_(m), closure_(std::move(closure)) {}
  std::string type_name() const override { return "Macro"; }
  std::string repr() const override { return "<Macro '" + m_->name + "'>"; }
  bool callable() const override { return true; }
  bool attr(std::string_view name, Value& out) const override {
    if (name == "name") {
      out = Value(m_->name);
      return true;
    }
    return false;
  }
  Value call(Renderer& r, Args& args) const override { return r.call_macro(*m_, closure_, args); }

 private:
  const MacroStmt* m_;
  std::shared_ptr<Scope> closure_;
};

// Jinja's LoopContext. One object per loop whose position advances, so a reference kept to it sees the current
// iteration, as in Jinja.
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
 public:
  LoopObject(std::shared_ptr<const std::vector<Value>> items, int depth, const ForStmt* f,
             std::shared_ptr<Scope> outer)
      : items_(std::move(items)), depth_(depth), f_(f), outer_(std::move(outer)) {}

  size_t index0 = 0;

  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override { return cat("<LoopContext ", index0 + 1, "/", items_->size(), ">"); }
  bool callable() const override { return f_->recursive; }
  Value call(Renderer& r, Args& args) const override {
    if (!f_->recursive) runtime_fail("the loop is not recursive: add 'recursive' to the for tag to call loop()");
    if (args.positional.size() != 1 || !args.keyword.empty()) runtime_fail("loop() takes exactly one argument");
    return Value(r.recurse_loop(*f_, outer_, args.positional[0], depth_ + 1));
  }

  bool attr(std::string_view name, Value& out) const override {
    const size_t n = items_->size();
    if (name == "index0") out = Value(int64_t(index0));
    else if (name == "index") out = Value(int64_t(index0 + 1));
    else if (name == "revindex") out = Value(int64_t(n - index0));
    else if (name == "revindex0") out = Value(int64_t(n - index0 - 1));
    else if (name == "first") out = Value(index0 == 0);
    else if (name == "last") out = Value(index0 + 1 == n);
    else if (name == "length") out = Value(int64_t(n));
    else if (name == "depth") out = Value(int64_t(depth_ + 1));
    else if (name == "depth0") out = Value(int64_t(depth_));
    else if (name == "previtem")
      out = index0 > 0 ? (*items_)[index0 - 1] : Value::undefined("there is no previous item");
    else if (name == "nextitem")
      out = index0 + 1 < n ? (*items_)[index0 + 1] : Value::undefined("there is no next item");
    else if (name == "cycle")
      out = make_function("cycle", &LoopObject::cycle, Value::object(shared_from_this()));
    else if (name == "changed")
      out = make_function("changed", &LoopObject::changed, Value::object(shared_from_this()));
    else
      return false;
    return true;
  }

 private:
  static Value cycle(Renderer&, const Value& self, Args& args) {
    const auto& lo = static_cast<const LoopObject&>(self.obj());
    if (args.positional.empty()) runtime_fail("no items for cycling given");
    return args.positional[lo.index0 % args.positional.size()];
  }
  static Value changed(Renderer&, const Value& self, Args& args) {
    const auto& lo = static_cast<const LoopObject&>(self.obj());
    Value now = Value::tuple(args.positional);
    if (lo.has_last_ && equals(lo.last_changed_, now)) return Value(false);
    lo.last_changed_ = now;
    lo.has_last_ = true;
    return Value(true);
  }

  std::shared_ptr<const std::vector<Value>> items_;
  int depth_;
  const ForStmt* f_;
  std::shared_ptr<Scope> outer_;
  mutable Value last_changed_;
  mutable bool has_last_ = false;
};

// Restores the output buffer when a capture ends, also by exception.
struct OutputSwap {
  std::string*& slot;
  std::string* saved;
  OutputSwap(std::string*& s, std::string* tmp) : slot(s), saved(s) { slot = tmp; }
  ~OutputSwap() { slot = saved; }
};

}  // namespace

// ---- Renderer --------------------------------------------------------------------------------------------------------

Renderer::Renderer(const std::string& template_name, const RenderOptions& opt) : name_(template_name), opt_(opt) {}

Renderer::~Renderer() {
  // Break the reference cycles that in-place mutation and closures can create (l.append(l), a macro stored in
  // the scope it closes over), so that reference counting frees everything.
  for (Value& v : mutated_) {
    if (v.is_sequence()) v.items().clear();
    else if (v.is_dict() || v.is_namespace()) v.dict_data().clear();
  }
  for (auto& s : closures_) {
    s->vars.clear();
    s->parent.reset();
  }
}

std::string Renderer::render(const Body& body, const Value& context) {
  context_ = context;
  std::string out;
  out_ = &out;
  auto root = std::make_shared<Scope>();
  closures_.push_back(root);
  exec_body(body, root);
  out_ = nullptr;
  return out;
}

void Renderer::fail_at(Loc loc, const RuntimeFailure& f) const {
  throw TemplateError(f.raised() ? TemplateError::Kind::Raised : TemplateError::Kind::Runtime, name_, loc.line,
                      loc.col, f.what());
}

void Renderer::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > opt_.max_steps)
    runtime_fail("rendering exceeded the step limit (", opt_.max_steps,
                 " loop iterations, calls and created elements): the template does not terminate in time");
}

void Renderer::note_mutation(const Value& container) { mutated_.push_back(container); }

void Renderer::emit(std::string_view s) {
  if (out_->size() + s.size() > opt_.max_output_bytes)
    runtime_fail("the rendered text exceeds the size limit of ", opt_.max_output_bytes, " bytes");
  out_->append(s);
}

std::string Renderer::capture(const Body& body, const std::shared_ptr<Scope>& scope) {
  std::string buf;
  OutputSwap swap(out_, &buf);
  exec_body(body, scope);
  return buf;
}

// The body of {% set x %}...{% endset %} or {% filter f %}...{% endfilter %}: rendered in its own scope, then
// passed through the filters.
Value Renderer::capture_filtered(const Body& body, const std::vector<std::unique_ptr<FilterExpr>>& filters,
                                 const std::shared_ptr<Scope>& scope) {
  auto inner = std::make_shared<Scope>();
  inner->parent = scope;
  Value v(capture(body, inner));
  for (const auto& f : filters) v = apply_filter(*f, v, scope);
  return v;
}

Renderer::Flow Renderer::exec_body(const Body& body, const std::shared_ptr<Scope>& scope) {
  for (const auto& s : body) {
    Flow f = exec(*s, scope);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Renderer::Flow Renderer::exec(const Stmt& s, const std::shared_ptr<Scope>& scope) {
  try {
    switch (s.kind) {
      case StmtKind::Text: emit(static_cast<const TextStmt&>(s).text); return Flow::Normal;
      case StmtKind::Output: {
        Value v = eval(*static_cast<const OutputStmt&>(s).expr, scope);
        if (v.is_string()) emit(v.str());
        else emit(to_str(v));
        return Flow::Normal;
      }
      case StmtKind::If: {
        const auto& st = static_cast<const IfStmt&>(s);
        for (const auto& [cond, body] : st.branches)
          if (truthy(eval(*cond, scope))) return exec_body(body, scope);
        return exec_body(st.else_body, scope);
      }
      case StmtKind::For: {
        const auto& st = static_cast<const ForStmt&>(s);
        return exec_for(st, scope, eval(*st.iter, scope), 0);
      }
      case StmtKind::Set: {
        const auto& st = static_cast<const SetStmt&>(s);
        assign(st.target, eval(*st.value, scope), scope);
        return Flow::Normal;
      }
      case StmtKind::SetBlock: {
        const auto& st = static_cast<const SetBlockStmt&>(s);
        assign(st.target, capture_filtered(st.body, st.filters, scope), scope);
        return Flow::Normal;
      }
      case StmtKind::Macro: {
        const auto& st = static_cast<const MacroStmt&>(s);
        scope->set(st.name, Value::object(std::make_shared<MacroObject>(&st, scope)));
        closures_.push_back(scope);
        return Flow::Normal;
      }
      case StmtKind::CallBlock: {
        const auto& st = static_cast<const CallBlockStmt&>(s);
        Value caller = Value::object(std::make_shared<MacroObject>(&st.caller, scope));
        closures_.push_back(scope);
        Value callee = eval(*st.call->callee, scope);
        Args args = eval_args(st.call->args, scope);
        args.keyword.emplace_back("caller", caller);
        Value v;
        try {
          v = call(callee, args);
        } catch (const RuntimeFailure& f) {
          fail_at(st.call->loc, f);
        }
        emit(to_str(v));
        return Flow::Normal;
      }
      case StmtKind::FilterBlock: {
        const auto& st = static_cast<const FilterBlockStmt&>(s);
        emit(to_str(capture_filtered(st.body, st.filters, scope)));
        return Flow::Normal;
      }
      case StmtKind::With: {
        const auto& st = static_cast<const WithStmt&>(s);
        std::vector<Value> values;
        for (const auto& a : st.assignments) values.push_back(eval(*a.second, scope));
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        for (size_t i = 0; i < values.size(); ++i) assign(st.assignments[i].first, values[i], inner);
        return exec_body(st.body, inner);
      }
      case StmtKind::Scope: return exec_body(static_cast<const ScopeStmt&>(s).body, scope);
      case StmtKind::Break: return Flow::Break;
      case StmtKind::Continue: return Flow::Continue;
    }
  } catch (const RuntimeFailure& f) {
    fail_at(s.loc, f);
  }
  return Flow::Normal;
}

Renderer::Flow Renderer::exec_for(const ForStmt& f, const std::shared_ptr<Scope>& scope, const Value& iterable,
                                  int depth) {
  std::vector<Value> items = iterate(iterable);
  charge(1);
  if (f.filter) {
    std::vector<Value> kept;
    for (Value& item : items) {
      charge(1);
      auto tmp = std::make_shared<Scope>();
      tmp->parent = scope;
      assign(f.target, item, tmp);
      if (truthy(eval(*f.filter, tmp))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    if (!f.else_body.empty()) {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      exec_body(f.else_body, inner);
    }
    return Flow::Normal;
  }
  auto shared = std::make_shared<const std::vector<Value>>(std::move(items));
  auto loop = std::make_shared<LoopObject>(shared, depth, &f, scope);
  Value loop_value = Value::object(loop);
  for (size_t i = 0; i < shared->size(); ++i) {
    charge(1);
    loop->index0 = i;
    auto it = std::make_shared<Scope>();
    it->parent = scope;
    it->set("loop", loop_value);
    assign(f.target, (*shared)[i], it);
    if (exec_body(f.body, it) == Flow::Break) break;
  }
  return Flow::Normal;
}

std::string Renderer::recurse_loop(const ForStmt& f, const std::shared_ptr<Scope>& scope, const Value& items,
                                   int depth) {
  if (++call_depth_ > opt_.max_call_depth) {
    --call_depth_;
    runtime_fail("maximum recursion depth exceeded (", opt_.max_call_depth, " nested calls)");
  }
  std::string buf;
  try {
    OutputSwap swap(out_, &buf);
    exec_for(f, scope, items, depth);
  } catch (...) {
    --call_depth_;
    throw;
  }
  --call_depth_;
  return buf;
}

void Renderer::assign(const Target& t, const Value& v, const std::shared_ptr<Scope>& scope) {
  switch (t.kind) {
    case Target::Kind::Name: scope->set(t.name, v); return;
    case Target::Kind::NamespaceAttr: {
      Value ns = lookup(t.name, scope);
      if (!ns.is_namespace()) runtime_fail("cannot assign attribute on non-namespace object '", t.name, "'");
      ns.dict_data().set(Value(t.attr), v);
      note_mutation(ns);
      return;
    }
    case Target::Kind::Tuple: {
      std::vector<Value> items = iterate(v);
      if (items.size() > t.items.size())
        runtime_fail("too many values to unpack (expected ", t.items.size(), ")");
      if (items.size() < t.items.size())
        runtime_fail("not enough values to unpack (expected ", t.items.size(), ", got ", items.size(), ")");
      for (size_t i = 0; i < items.size(); ++i) assign(t.items[i], items[i], scope);
      return;
    }
  }
}

Value Renderer::lookup(const std::string& name, const std::shared_ptr<Scope>& scope) {
  for (const Scope* s = scope.get(); s; s = s->parent.get())
    if (const Value* v = s->find(name)) return *v;
  if (context_.is_dict())
    if (const Value* v = context_.dict_data().find_key(name)) return *v;
  Value g;
  if (find_global(name, g)) return g;
  return Value::undefined("'" + name + "' is undefined");
}

Value Renderer::call(const Value& callee, Args& args) {
  if (callee.is_object() && callee.obj().callable()) return callee.obj().call(*this, args);
  require_defined(callee);
  runtime_fail("'", type_name(callee), "' object is not callable");
}

Value Renderer::call_macro(const MacroStmt& m, const std::shared_ptr<Scope>& closure, Args& args) {
  charge(1);
  if (call_depth_ + 1 > opt_.max_call_depth)
    runtime_fail("maximum recursion depth exceeded (", opt_.max_call_depth, " nested calls)");
  auto scope = std::make_shared<Scope>();
  scope->parent = closure;
  const size_t np = m.params.size();
  if (args.positional.size() > np && !m.uses_varargs)
    runtime_fail("macro '", m.name, "' takes not more than ", np, " argument(s)");
  std::vector<bool> kw_used(args.keyword.size(), false);
  auto find_kw = [&](std::string_view name) -> const Value* {
    for (size_t i = 0; i < args.keyword.size(); ++i) {
      if (args.keyword[i].first == name) {
        kw_used[i] = true;
        return &args.keyword[i].second;
      }
    }
    return nullptr;
  };
  for (size_t i = 0; i < np; ++i) {
    const MacroParam& p = m.params[i];
    const Value* kw = find_kw(p.name);
    if (i < args.positional.size()) {
      if (kw) runtime_fail("macro '", m.name, "' got multiple values for argument '", p.name, "'");
      scope->set(p.name, args.positional[i]);
    } else if (kw) {
      scope->set(p.name, *kw);
    } else if (p.default_value) {
      scope->set(p.name, eval(*p.default_value, scope));
    } else {
      scope->set(p.name, Value::undefined("parameter '" + p.name + "' was not provided"));
    }
  }
  if (const Value* c = find_kw("caller")) {
    if (!m.uses_caller) runtime_fail("macro '", m.name, "' takes no keyword argument 'caller'");
    scope->set("caller", *c);
  } else if (m.uses_caller) {
    scope->set("caller", Value::undefined("No caller defined"));
  }
  if (m.uses_varargs) {
    std::vector<Value> extra;
    for (size_t i = np; i < args.positional.size(); ++i) extra.push_back(args.positional[i]);
    scope->set("varargs", Value::tuple(std::move(extra)));
  }
  Value kwargs = Value::dict();
  for (size_t i = 0; i < args.keyword.size(); ++i) {
    if (kw_used[i]) continue;
    if (!m.uses_kwargs)
      runtime_fail("macro '", m.name, "' takes no keyword argument '", args.keyword[i].first, "'");
    kwargs.dict_data().set(Value(args.keyword[i].first), args.keyword[i].second);
  }
  if (m.uses_kwargs) scope->set("kwargs", kwargs);
  ++call_depth_;
  std::string out;
  try {
    out = capture(m.body, scope);
  } catch (...) {
    --call_depth_;
    throw;
  }
  --call_depth_;
  return Value(std::move(out));
}

bool Renderer::run_test(std::string_view name, const Value& v, Args& args) {
  TestFn fn = find_test(name);
  if (!fn) runtime_fail("no test named '", name, "'");
  return fn(*this, v, args);
}

Value Renderer::run_filter(std::string_view name, const Value& v, Args& args) {
  FilterFn fn = find_filter(name);
  if (!fn) runtime_fail("no filter named '", name, "'");
  return fn(*this, v, args);
}

Args Renderer::eval_args(const CallArgs& a, const std::shared_ptr<Scope>& scope) {
  Args out;
  for (const auto& p : a.positional) out.positional.push_back(eval(*p, scope));
  if (a.star_args)
    for (Value& v : iterate(eval(*a.star_args, scope))) out.positional.push_back(std::move(v));
  for (const auto& [k, e] : a.keyword) out.keyword.emplace_back(k, eval(*e, scope));
  if (a.star_kwargs) {
    Value d = eval(*a.star_kwargs, scope);
    if (!d.is_dict()) runtime_fail("argument after ** must be a mapping, not ", type_name(d));
    for (const auto& [k, v] : d.dict_data().entries()) {
      if (!k.is_string()) runtime_fail("keywords must be strings");
      for (const auto& existing : out.keyword)
        if (existing.first == k.str()) runtime_fail("got multiple values for keyword argument '", k.str(), "'");
      out.keyword.emplace_back(k.str(), v);
    }
  }
  return out;
}

Value Renderer::apply_filter(const FilterExpr& f, const Value& input, const std::shared_ptr<Scope>& scope) {
  Args args = eval_args(f.args, scope);
  try {
    return f.fn(*this, input, args);
  } catch (const RuntimeFailure& e) {
    fail_at(f.loc, e);
  }
}

Value Renderer::eval(const Expr& e, const std::shared_ptr<Scope>& scope) {
  try {
    return eval_inner(e, scope);
  } catch (const RuntimeFailure& f) {
    fail_at(e.loc, f);
  }
}

Value Renderer::eval_inner(const Expr& e, const std::shared_ptr<Scope>& scope) {
  switch (e.kind) {
    case ExprKind::Literal: return static_cast<const LiteralExpr&>(e).value;
    case ExprKind::Name: return lookup(static_cast<const NameExpr&>(e).name, scope);
    case ExprKind::List: {
      const auto& x = static_cast<const ListExpr&>(e);
      std::vector<Value> items;
      items.reserve(x.items.size());
      for (const auto& i : x.items) items.push_back(eval(*i, scope));
      charge(items.size());
      return x.is_tuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    case ExprKind::Dict: {
      const auto& x = static_cast<const DictExpr&>(e);
      Value d = Value::dict();
      for (const auto& [k, v] : x.items) {
        Value key = eval(*k, scope);
        d.dict_data().set(std::move(key), eval(*v, scope));
      }
      charge(x.items.size());
      return d;
    }
    case ExprKind::GetAttr: {
      const auto& x = static_cast<const GetAttrExpr&>(e);
      return get_attr(eval(*x.object, scope), x.name);
    }
    case ExprKind::GetItem: {
      const auto& x = static_cast<const GetItemExpr&>(e);
      Value obj = eval(*x.object, scope);
      return get_item(obj, eval(*x.index, scope));
    }
    case ExprKind::Slice: {
      const auto& x = static_cast<const SliceExpr&>(e);
      Value obj = eval(*x.object, scope);
      Value a = x.start ? eval(*x.start, scope) : Value::none();
      Value b = x.stop ? eval(*x.stop, scope) : Value::none();
      Value c = x.step ? eval(*x.step, scope) : Value::none();
      Value r = slice(obj, a, b, c);
      if (r.is_sequence()) charge(r.items().size());
      return r;
    }
    case ExprKind::Unary: {
      const auto& x = static_cast<const UnaryExpr&>(e);
      Value v = eval(*x.operand, scope);
      if (x.op == "not") return Value(!truthy(v));
      if (x.op == "-") return negate(v);
      return positive(v);
    }
    case ExprKind::Binary: {
      const auto& x = static_cast<const BinaryExpr&>(e);
      Value a = eval(*x.left, scope);
      const std::string& op = x.op;
      if (op == "and") return truthy(a) ? eval(*x.right, scope) : a;
      if (op == "or") return truthy(a) ? a : eval(*x.right, scope);
      Value b = eval(*x.right, scope);
      if (op == "~") {
        std::string s = to_str(a);
        std::string t = to_str(b);
        if (s.size() + t.size() > max_len()) runtime_fail("string exceeds the size limit");
        return Value(s + t);
      }
      if (op == "+") return add(a, b, max_len());
      if (op == "-") return sub(a, b);
      if (op == "*") return mul(a, b, max_len());
      if (op == "/") return truediv(a, b);
      if (op == "//") return floordiv(a, b);
      if (op == "%") return mod(a, b, max_len());
      return power(a, b);
    }
    case ExprKind::Compare: {
      const auto& x = static_cast<const CompareExpr&>(e);
      Value left = eval(*x.first, scope);
      for (const auto& [op, rhs] : x.rest) {
        Value right = eval(*rhs, scope);
        bool ok;
        if (op == "==") ok = equals(left, right);
        else if (op == "!=") ok = !equals(left, right);
        else if (op == "<") ok = less(left, right, "<");
        else if (op == ">") ok = less(right, left, ">");
        else if (op == "<=") ok = less(left, right, "<=") || equals(left, right);
        else if (op == ">=") ok = less(right, left, ">=") || equals(left, right);
        else if (op == "in") ok = contains(right, left);
        else ok = !contains(right, left);
        if (!ok) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::Cond: {
      const auto& x = static_cast<const CondExpr&>(e);
      if (truthy(eval(*x.cond, scope))) return eval(*x.then, scope);
      if (x.otherwise) return eval(*x.otherwise, scope);
      return Value::undefined(cat("the inline if-expression on line ", e.loc.line,
                                  " evaluated to false and no else section was defined."));
    }
    case ExprKind::Call: {
      const auto& x = static_cast<const CallExpr&>(e);
      Value callee = eval(*x.callee, scope);
      Args args = eval_args(x.args, scope);
      return call(callee, args);
    }
    case ExprKind::Filter: {
      const auto& x = static_cast<const FilterExpr&>(e);
      return apply_filter(x, eval(*x.operand, scope), scope);
    }
    case ExprKind::Test: {
      const auto& x = static_cast<const TestExpr&>(e);
      Value v = eval(*x.operand, scope);
      Args args = eval_args(x.args, scope);
      return Value(x.fn(*this, v, args));
    }
  }
  return Value();
}

}  // namespace mmfp4::jinja
