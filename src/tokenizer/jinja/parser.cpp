#include "tokenizer/jinja/parser.h"

#include <algorithm>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/lexer.h"

namespace mmfp4::jinja {

namespace {

class Parser {
 public:
  Parser(std::vector<Token> toks, const std::string& name, const ParseLimits& lim)
      : toks_(std::move(toks)), name_(name), lim_(lim) {}

  Body parse_all() {
    std::string end;
    Body b = parse_body({}, &end, Loc{1, 1});
    return b;
  }

 private:
  // ---- token stream --------------------------------------------------------------------------------------------
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  const Token& advance() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }

  [[noreturn]] void fail(Loc l, const std::string& msg) const {
    throw TemplateError(TemplateError::Kind::Syntax, name_, l.line, l.col, msg);
  }
  [[noreturn]] void fail_here(const std::string& msg) const { fail(cur().loc, msg); }

  void expect_op(const char* op) {
    if (!skip_op(op)) fail_here(cat("expected '", op, "', got ", describe(cur())));
  }
  std::string expect_name(const char* what = "a name") {
    if (cur().type != Tok::Name) fail_here(cat("expected ", what, ", got ", describe(cur())));
    return advance().text;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) fail_here(cat("expected end of statement '%}', got ", describe(cur())));
    advance();
  }

  // Recursion guard for nested blocks and expressions.
  struct Nest {
    Parser& p;
    explicit Nest(Parser& pp) : p(pp) {
      if (++p.nesting_ > p.lim_.max_nesting) p.fail_here("template nesting too deep");
    }
    ~Nest() { --p.nesting_; }
  };

  template <typename T>
  ExprPtr finish(std::unique_ptr<T> e, std::initializer_list<const Expr*> kids) {
    int d = 0;
    for (const Expr* k : kids)
      if (k) d = std::max(d, k->depth);
    e->depth = d + 1;
    if (e->depth > lim_.max_expr_depth) fail(e->loc, "expression nested too deeply");
    return e;
  }
  int args_depth(const CallArgs& a) const {
    int d = 0;
    for (const auto& p : a.positional) d = std::max(d, p->depth);
    for (const auto& p : a.keyword) d = std::max(d, p.second->depth);
    if (a.star_args) d = std::max(d, a.star_args->depth);
    if (a.star_kwargs) d = std::max(d, a.star_kwargs->depth);
    return d;
  }
  ExprPtr finish_depth(ExprPtr e, int child_depth) {
    e->depth = child_depth + 1;
    if (e->depth > lim_.max_expr_depth) fail(e->loc, "expression nested too deeply");
    return e;
  }

  // ---- statements ----------------------------------------------------------------------------------------------
  // Parses until a block tag named in `ends`; consumes "{% end..." up to the tag name and reports it in *which.
  Body parse_body(std::initializer_list<const char*> ends, std::string* which, Loc opened) {
    Nest guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (ends.size() == 0) return body;
        std::string list;
        for (const char* e : ends) list += (list.empty() ? "'" : " or '") + std::string(e) + "'";
        fail(t.loc, cat("unexpected end of template: the block opened at line ", opened.line, " needs ", list));
      }
      if (t.type == Tok::Text) {
        body.push_back(std::make_unique<TextStmt>(t.loc, t.text));
        advance();
        continue;
      }
      if (t.type == Tok::VarBegin) {
        Loc l = advance().loc;
        if (cur().type == Tok::VarEnd) fail_here("expected an expression, got '}}'");
        ExprPtr e = parse_tuple(true, {}, false);
        if (cur().type != Tok::VarEnd) fail_here(cat("expected '}}', got ", describe(cur())));
        advance();
        body.push_back(std::make_unique<OutputStmt>(l, std::move(e)));
        continue;
      }
      if (t.type != Tok::BlockBegin) fail_here(cat("unexpected ", describe(t)));
      const Token& tag = peek();
      if (tag.type == Tok::Name) {
        for (const char* e : ends) {
          if (tag.text == e) {
            advance();
            advance();
            *which = e;
            return body;
          }
        }
      }
      body.push_back(parse_statement(ends));
    }
  }

  StmtPtr parse_statement(std::initializer_list<const char*> ends) {
    Loc l = advance().loc;  // {%
    if (cur().type != Tok::Name) fail_here(cat("expected a tag name, got ", describe(cur())));
    std::string tag = cur().text;
    Loc tag_loc = cur().loc;
    advance();
    if (tag == "if") return parse_if(l);
    if (tag == "for") return parse_for(l);
    if (tag == "set") return parse_set(l);
    if (tag == "macro") return parse_macro(l);
    if (tag == "call") return parse_call_block(l);
    if (tag == "filter") return parse_filter_block(l);
    if (tag == "with") return parse_with(l);
    if (tag == "generation") {
      auto s = std::make_unique<ScopeStmt>(l);
      s->body = parse_closed_body("endgeneration", l);
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(tag_loc, cat("'", tag, "' outside of a for loop"));
      expect_block_end();
      return std::make_unique<LoopControlStmt>(tag == "break" ? StmtKind::Break : StmtKind::Continue, l);
    }
    static const char* const unsupported[] = {"include", "import", "from", "extends", "block",
                                              "autoescape", "do", "trans", "raw"};
    for (const char* u : unsupported)
      if (tag == u) fail(tag_loc, cat("the '", tag, "' tag is not supported in chat templates"));
    if (ends.size()) {
      std::string list;
      for (const char* e : ends) list += (list.empty() ? "'" : " or '") + std::string(e) + "'";
      fail(tag_loc, cat("unexpected tag '", tag, "'; expected ", list));
    }
    fail(tag_loc, cat("unknown tag '", tag, "'"));
  }

  // `%}` then a body up to one of `ends`, then the end tag's `%}`. Returns which end tag closed it.
  Body parse_block_body(std::initializer_list<const char*> ends, Loc opened, std::string* which = nullptr) {
    skip_op(":");  // Jinja accepts {% if x: %} for Python habits
    expect_block_end();
    std::string w;
    Body b = parse_body(ends, &w, opened);
    if (which) *which = w;
    return b;
  }

  // A body closed by one end tag, consumed with its '%}'.
  Body parse_closed_body(const char* end, Loc opened) {
    Body b = parse_block_body({end}, opened);
    expect_block_end();
    return b;
  }

  StmtPtr parse_if(Loc l) {
    auto s = std::make_unique<IfStmt>(l);
    while (true) {
      ExprPtr cond = parse_tuple(false, {}, false);
      std::string which;
      Body body = parse_block_body({"elif", "else", "endif"}, l, &which);
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (which == "elif") continue;
      if (which == "else") s->else_body = parse_closed_body("endif", l);
      else expect_block_end();
      return s;
    }
  }

  StmtPtr parse_for(Loc l) {
    auto s = std::make_unique<ForStmt>(l);
    s->target = parse_target(false, {"in"});
    if (!skip_name("in")) fail_here(cat("expected 'in', got ", describe(cur())));
    s->iter = parse_tuple(false, {"recursive"}, false);
    if (skip_name("if")) s->filter = parse_expression(true);
    s->recursive = skip_name("recursive");
    std::string which;
    ++loop_depth_;
    s->body = parse_block_body({"endfor", "else"}, l, &which);
    --loop_depth_;
    if (which == "else") s->else_body = parse_closed_body("endfor", l);
    else expect_block_end();
    return s;
  }

  StmtPtr parse_set(Loc l) {
    Target t = parse_target(true, {});
    if (skip_op("=")) {
      auto s = std::make_unique<SetStmt>(l);
      s->target = std::move(t);
      s->value = parse_tuple(true, {}, false);
      expect_block_end();
      return s;
    }
    auto s = std::make_unique<SetBlockStmt>(l);
    if (t.kind == Target::Kind::Tuple) fail(t.loc, "a block set needs a single target");
    s->target = std::move(t);
    while (is_op("|")) {
      advance();
      s->filters.push_back(parse_filter_call(nullptr));
    }
    s->body = parse_closed_body("endset", l);
    return s;
  }

  void parse_signature(MacroStmt& m) {
    expect_op("(");
    while (!is_op(")")) {
      if (!m.params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam p;
      p.name = expect_name("a parameter name");
      if (skip_op("=")) p.default_value = parse_expression(true);
      else if (!m.params.empty() && m.params.back().default_value)
        fail_here("non-default argument follows default argument");
      m.params.push_back(std::move(p));
    }
    expect_op(")");
  }

  // Parses a macro body, recording whether it reads varargs/kwargs/caller.
  void parse_macro_body(MacroStmt& m, const char* end, Loc l) {
    macros_.push_back(&m);
    int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot cross a macro boundary
    m.body = parse_closed_body(end, l);
    loop_depth_ = saved_loops;
    macros_.pop_back();
  }

  StmtPtr parse_macro(Loc l) {
    auto s = std::make_unique<MacroStmt>(l);
    s->name = expect_name("a macro name");
    parse_signature(*s);
    parse_macro_body(*s, "endmacro", l);
    return s;
  }

  StmtPtr parse_call_block(Loc l) {
    auto s = std::make_unique<CallBlockStmt>(l);
    s->caller.name = "caller";
    if (is_op("(")) parse_signature(s->caller);
    ExprPtr e = parse_expression(true);
    if (e->kind != ExprKind::Call) fail(e->loc, "expected a macro call after 'call'");
    s->call.reset(static_cast<CallExpr*>(e.release()));
    parse_macro_body(s->caller, "endcall", l);
    return s;
  }

  StmtPtr parse_filter_block(Loc l) {
    auto s = std::make_unique<FilterBlockStmt>(l);
    s->filters.push_back(parse_filter_call(nullptr));
    while (is_op("|")) {
      advance();
      s->filters.push_back(parse_filter_call(nullptr));
    }
    s->body = parse_closed_body("endfilter", l);
    return s;
  }

  StmtPtr parse_with(Loc l) {
    auto s = std::make_unique<WithStmt>(l);
    while (cur().type != Tok::BlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      Target t = parse_target(false, {});
      expect_op("=");
      s->assignments.emplace_back(std::move(t), parse_expression(true));
    }
    s->body = parse_closed_body("endwith", l);
    return s;
  }

  // Targets: name | ns.attr (with_namespace) | target, target... | (target, ...)
  Target parse_target(bool with_namespace, std::initializer_list<const char*> end_names) {
    Target first = parse_target_item(with_namespace);
    if (!is_op(",")) return first;
    Target tuple;
    tuple.kind = Target::Kind::Tuple;
    tuple.loc = first.loc;
    tuple.items.push_back(std::move(first));
    while (skip_op(",")) {
      bool end = cur().type == Tok::BlockEnd || is_op("=") || is_op(")");
      for (const char* n : end_names) end = end || is_name(n);
      if (end) break;
      tuple.items.push_back(parse_target_item(false));
    }
    return tuple;
  }

  Target parse_target_item(bool with_namespace) {
    Target t;
    t.loc = cur().loc;
    if (skip_op("(")) {
      Target inner = parse_target(false, {});
      expect_op(")");
      if (inner.kind != Target::Kind::Tuple) return inner;
      inner.loc = t.loc;
      return inner;
    }
    if (cur().type != Tok::Name) fail_here(cat("cannot assign to ", describe(cur())));
    t.name = advance().text;
    static const char* const consts[] = {"true", "false", "none", "True", "False", "None"};
    for (const char* c : consts)
      if (t.name == c) fail(t.loc, cat("cannot assign to '", t.name, "'"));
    if (with_namespace && is_op(".")) {
      advance();
      t.kind = Target::Kind::NamespaceAttr;
      t.attr = expect_name("an attribute name");
    }
    return t;
  }

  // ---- expressions ---------------------------------------------------------------------------------------------
  bool is_tuple_end(std::initializer_list<const char*> extra_end) const {
    if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || cur().type == Tok::Eof || is_op(")"))
      return true;
    for (const char* n : extra_end)
      if (is_name(n)) return true;
    return false;
  }

  // Comma-separated expressions; more than one (or a trailing comma) makes a tuple.
  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra_end, bool explicit_parens) {
    Loc l = cur().loc;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail_here(cat("expected an expression, got ", describe(cur())));
    }
    auto t = std::make_unique<ListExpr>(l);
    t->is_tuple = true;
    int d = 0;
    for (auto& e : items) d = std::max(d, e->depth);
    t->items = std::move(items);
    return finish_depth(std::move(t), d);
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      Loc l = advance().loc;
      auto c = std::make_unique<CondExpr>(l);
      c->then = std::move(e);
      c->cond = parse_or();
      if (skip_name("else")) {
        Nest guard(*this);
        c->otherwise = parse_condexpr();
      }
      const Expr* a = c->then.get();
      const Expr* b = c->cond.get();
      const Expr* o = c->otherwise.get();
      e = finish(std::move(c), {a, b, o});
    }
    return e;
  }

  ExprPtr binary(Loc l, std::string op, ExprPtr a, ExprPtr b) {
    const Expr* pa = a.get();
    const Expr* pb = b.get();
    return finish(std::make_unique<BinaryExpr>(l, std::move(op), std::move(a), std::move(b)), {pa, pb});
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      Loc l = advance().loc;
      e = binary(l, "or", std::move(e), parse_and());
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      Loc l = advance().loc;
      e = binary(l, "and", std::move(e), parse_not());
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest guard(*this);
      Loc l = advance().loc;
      ExprPtr inner = parse_not();
      const Expr* p = inner.get();
      return finish(std::make_unique<UnaryExpr>(l, "not", std::move(inner)), {p});
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    Loc l = cur().loc;
    ExprPtr first = parse_math1();
    std::unique_ptr<CompareExpr> c;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = advance().text;
      } else if (is_name("in")) {
        advance();
        op = "in";
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        advance();
        advance();
        op = "notin";
      } else {
        break;
      }
      if (!c) {
        c = std::make_unique<CompareExpr>(l);
        c->first = std::move(first);
      }
      c->rest.emplace_back(op, parse_math1());
    }
    if (!c) return first;
    int d = c->first->depth;
    for (auto& r : c->rest) d = std::max(d, r.second->depth);
    return finish_depth(std::move(c), d);
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      Loc l = cur().loc;
      std::string op = advance().text;
      e = binary(l, op, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      Loc l = advance().loc;
      e = binary(l, "~", std::move(e), parse_math2());
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      Loc l = cur().loc;
      std::string op = advance().text;
      e = binary(l, op, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      Loc l = advance().loc;
      e = binary(l, "**", std::move(e), parse_unary(true));
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      Loc l = cur().loc;
      std::string op = advance().text;
      ExprPtr inner = parse_unary(false);
      const Expr* p = inner.get();
      e = finish(std::make_unique<UnaryExpr>(l, op, std::move(inner)), {p});
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    Loc l = t.loc;
    switch (t.type) {
      case Tok::Name: {
        std::string n = advance().text;
        if (n == "true" || n == "True") return std::make_unique<LiteralExpr>(l, Value(true));
        if (n == "false" || n == "False") return std::make_unique<LiteralExpr>(l, Value(false));
        if (n == "none" || n == "None") return std::make_unique<LiteralExpr>(l, Value::none());
        if (!macros_.empty()) {
          if (n == "varargs") macros_.back()->uses_varargs = true;
          if (n == "kwargs") macros_.back()->uses_kwargs = true;
          if (n == "caller") macros_.back()->uses_caller = true;
        }
        return std::make_unique<NameExpr>(l, std::move(n));
      }
      case Tok::String: {
        std::string s = advance().text;
        while (cur().type == Tok::String) s += advance().text;  // adjacent literals concatenate
        return std::make_unique<LiteralExpr>(l, Value(std::move(s)));
      }
      case Tok::Int: return std::make_unique<LiteralExpr>(l, Value(advance().ival));
      case Tok::Float: return std::make_unique<LiteralExpr>(l, Value(advance().fval));
      case Tok::Op:
        if (t.text == "(") {
          advance();
          ExprPtr e = parse_tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    fail(l, cat("unexpected ", describe(t)));
  }

  ExprPtr parse_list() {
    Loc l = advance().loc;
    auto e = std::make_unique<ListExpr>(l);
    int d = 0;
    while (!is_op("]")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("]")) break;
      e->items.push_back(parse_expression(true));
      d = std::max(d, e->items.back()->depth);
    }
    expect_op("]");
    return finish_depth(std::move(e), d);
  }

  ExprPtr parse_dict() {
    Loc l = advance().loc;
    auto e = std::make_unique<DictExpr>(l);
    int d = 0;
    while (!is_op("}")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr k = parse_expression(true);
      expect_op(":");
      ExprPtr v = parse_expression(true);
      d = std::max({d, k->depth, v->depth});
      e->items.emplace_back(std::move(k), std::move(v));
    }
    expect_op("}");
    return finish_depth(std::move(e), d);
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        advance();
        e = parse_filter_call(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    Loc l = cur().loc;
    if (skip_op(".")) {
      if (cur().type == Tok::Name) {
        std::string n = advance().text;
        const Expr* p = obj.get();
        return finish(std::make_unique<GetAttrExpr>(l, std::move(obj), std::move(n)), {p});
      }
      if (cur().type == Tok::Int) {
        auto idx = std::make_unique<LiteralExpr>(cur().loc, Value(advance().ival));
        const Expr* p = obj.get();
        return finish(std::make_unique<GetItemExpr>(l, std::move(obj), std::move(idx)), {p});
      }
      fail_here(cat("expected an attribute name after '.', got ", describe(cur())));
    }
    expect_op("[");
    std::vector<ExprPtr> parts;
    std::unique_ptr<SliceExpr> sl;
    while (!is_op("]")) {
      if (!parts.empty() || sl) expect_op(",");
      if (sl) fail_here("a slice cannot be combined with other subscripts");
      Loc sloc = cur().loc;
      ExprPtr start;
      if (!is_op(":")) {
        start = parse_expression(true);
        if (!is_op(":")) {
          parts.push_back(std::move(start));
          continue;
        }
      }
      advance();  // ':'
      sl = std::make_unique<SliceExpr>(sloc);
      sl->start = std::move(start);
      if (!is_op("]") && !is_op(",") && !is_op(":")) sl->stop = parse_expression(true);
      if (skip_op(":")) {
        if (!is_op("]") && !is_op(",")) sl->step = parse_expression(true);
      }
    }
    expect_op("]");
    const Expr* p = obj.get();
    if (sl) {
      if (!parts.empty()) fail(l, "a slice cannot be combined with other subscripts");
      const Expr* a = sl->start.get();
      const Expr* b = sl->stop.get();
      const Expr* c = sl->step.get();
      sl->object = std::move(obj);
      sl->loc = l;
      return finish(std::move(sl), {p, a, b, c});
    }
    if (parts.empty()) fail(l, "expected a subscript inside '[]'");
    ExprPtr index;
    if (parts.size() == 1) {
      index = std::move(parts[0]);
    } else {
      auto t = std::make_unique<ListExpr>(l);
      t->is_tuple = true;
      int d = 0;
      for (auto& x : parts) d = std::max(d, x->depth);
      t->items = std::move(parts);
      index = finish_depth(std::move(t), d);
    }
    const Expr* q = index.get();
    return finish(std::make_unique<GetItemExpr>(l, std::move(obj), std::move(index)), {p, q});
  }

  CallArgs parse_call_args() {
    CallArgs a;
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (skip_op("*")) {
        if (a.star_args) fail_here("only one *args is allowed");
        a.star_args = parse_expression(true);
      } else if (skip_op("**")) {
        if (a.star_kwargs) fail_here("only one **kwargs is allowed");
        a.star_kwargs = parse_expression(true);
      } else if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        if (a.star_kwargs) fail_here("keyword argument after **kwargs");
        std::string key = advance().text;
        advance();
        for (auto& kw : a.keyword)
          if (kw.first == key) fail_here(cat("keyword argument repeated: '", key, "'"));
        a.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!a.keyword.empty() || a.star_args || a.star_kwargs)
          fail_here("positional argument follows keyword or unpacked arguments");
        a.positional.push_back(parse_expression(true));
      }
    }
    expect_op(")");
    return a;
  }

  ExprPtr parse_call(ExprPtr callee) {
    // Errors of a call point at what was called: raise_exception(...) reports where its name starts.
    auto c = std::make_unique<CallExpr>(callee->loc);
    c->args = parse_call_args();
    int d = std::max(callee->depth, args_depth(c->args));
    c->callee = std::move(callee);
    return finish_depth(std::move(c), d);
  }

  std::string dotted_name() {
    std::string n = expect_name("a filter or test name");
    while (is_op(".")) {
      advance();
      n += "." + expect_name("a name");
    }
    return n;
  }

  std::unique_ptr<FilterExpr> parse_filter_call(ExprPtr operand) {
    Loc l = cur().loc;
    auto f = std::make_unique<FilterExpr>(l);
    f->name = dotted_name();
    f->fn = find_filter(f->name);
    if (!f->fn) {
      if (is_unsupported_filter(f->name)) fail(l, cat("filter '", f->name, "' is not supported"));
      fail(l, cat("unknown filter '", f->name, "'"));
    }
    if (is_op("(")) f->args = parse_call_args();
    int d = args_depth(f->args);
    if (operand) d = std::max(d, operand->depth);
    f->operand = std::move(operand);
    f->depth = d + 1;
    if (f->depth > lim_.max_expr_depth) fail(l, "expression nested too deeply");
    return f;
  }

  ExprPtr parse_test(ExprPtr operand) {
    Loc l = advance().loc;  // 'is'
    bool negated = skip_name("not");
    Loc nl = cur().loc;
    auto t = std::make_unique<TestExpr>(l);
    t->name = dotted_name();
    t->fn = find_test(t->name);
    if (!t->fn) fail(nl, cat("unknown test '", t->name, "'"));
    if (is_op("(")) {
      t->args = parse_call_args();
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail_here("tests cannot be chained with 'is'");
      // One argument without parentheses: `x is divisibleby 3`, `x is sameas none`.
      ExprPtr arg = parse_postfix(parse_primary());
      t->args.positional.push_back(std::move(arg));
    }
    int d = std::max(operand->depth, args_depth(t->args));
    t->operand = std::move(operand);
    ExprPtr e = finish_depth(std::move(t), d);
    if (negated) {
      const Expr* p = e.get();
      e = finish(std::make_unique<UnaryExpr>(l, "not", std::move(e)), {p});
    }
    return e;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  const std::string& name_;
  ParseLimits lim_;
  int nesting_ = 0;
  int loop_depth_ = 0;
  std::vector<MacroStmt*> macros_;
};

}  // namespace

Body parse_template(std::string_view source, const std::string& name, const ParseLimits& limits) {
  Parser p(tokenize(source, name), name, limits);
  return p.parse_all();
}

}  // namespace mmfp4::jinja
