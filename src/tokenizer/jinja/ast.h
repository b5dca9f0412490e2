// The syntax tree of a parsed template. Immutable after parsing, so one Template renders from many threads.
// Filters and tests are resolved to their functions at parse time: an unknown name is a syntax error there.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/value.h"

namespace mmfp4::jinja {

struct Args;
using FilterFn = Value (*)(Renderer&, const Value& input, Args& args);
using TestFn = bool (*)(Renderer&, const Value& input, Args& args);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : uint8_t {
  Literal,    // value
  Name,       // name
  List,       // items (also tuples: is_tuple)
  Dict,       // keys/items pairs
  GetAttr,    // a.name
  GetItem,    // a[b]
  Slice,      // a[b:c:d]
  Unary,      // op: "not", "-", "+"
  Binary,     // op: + - * / // % ** ~ and or
  Compare,    // first op1 e1 op2 e2 ...
  Cond,       // then if cond else otherwise
  Call,       // callee(args)
  Filter,     // operand | name(args)
  Test,       // operand is [not] name(args)
};

struct CallArgs {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr star_args;    // *args
  ExprPtr star_kwargs;  // **kwargs
};

struct Expr {
  ExprKind kind;
  Loc loc;
  int depth = 1;  // height of this subtree: bounds the evaluator's recursion
  explicit Expr(ExprKind k, Loc l) : kind(k), loc(l) {}
  virtual ~Expr() = default;
};

struct LiteralExpr : Expr {
  Value value;  // None, bool, number or string only: containers are built fresh at each evaluation
  LiteralExpr(Loc l, Value v) : Expr(ExprKind::Literal, l), value(std::move(v)) {}
};

struct NameExpr : Expr {
  std::string name;
  NameExpr(Loc l, std::string n) : Expr(ExprKind::Name, l), name(std::move(n)) {}
};

struct ListExpr : Expr {
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  explicit ListExpr(Loc l) : Expr(ExprKind::List, l) {}
};

struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
  explicit DictExpr(Loc l) : Expr(ExprKind::Dict, l) {}
};

struct GetAttrExpr : Expr {
  ExprPtr object;
  std::string name;
  GetAttrExpr(Loc l, ExprPtr o, std::string n) : Expr(ExprKind::GetAttr, l), object(std::move(o)), name(std::move(n)) {}
};

struct GetItemExpr : Expr {
  ExprPtr object, index;
  GetItemExpr(Loc l, ExprPtr o, ExprPtr i) : Expr(ExprKind::GetItem, l), object(std::move(o)), index(std::move(i)) {}
};

struct SliceExpr : Expr {
  ExprPtr object, start, stop, step;  // absent parts are null
  explicit SliceExpr(Loc l) : Expr(ExprKind::Slice, l) {}
};

struct UnaryExpr : Expr {
  std::string op;
  ExprPtr operand;
  UnaryExpr(Loc l, std::string o, ExprPtr e) : Expr(ExprKind::Unary, l), op(std::move(o)), operand(std::move(e)) {}
};

struct BinaryExpr : Expr {
  std::string op;
  ExprPtr left, right;
  BinaryExpr(Loc l, std::string o, ExprPtr a, ExprPtr b)
      : Expr(ExprKind::Binary, l), op(std::move(o)), left(std::move(a)), right(std::move(b)) {}
};

struct CompareExpr : Expr {
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> rest;  // op: == != < <= > >= in notin
  explicit CompareExpr(Loc l) : Expr(ExprKind::Compare, l) {}
};

struct CondExpr : Expr {
  ExprPtr cond, then, otherwise;  // otherwise may be null: Undefined
  explicit CondExpr(Loc l) : Expr(ExprKind::Cond, l) {}
};

struct CallExpr : Expr {
  ExprPtr callee;
  CallArgs args;
  explicit CallExpr(Loc l) : Expr(ExprKind::Call, l) {}
};

struct FilterExpr : Expr {
  ExprPtr operand;  // null in a {% filter %} block or {% set x | f %}: the rendered body is the input
  std::string name;
  FilterFn fn = nullptr;
  CallArgs args;
  explicit FilterExpr(Loc l) : Expr(ExprKind::Filter, l) {}
};

struct TestExpr : Expr {
  ExprPtr operand;
  std::string name;
  TestFn fn = nullptr;
  CallArgs args;
  explicit TestExpr(Loc l) : Expr(ExprKind::Test, l) {}
};

// Assignment targets: a name, ns.attr (namespace attribute) or a tuple of targets.
struct Target {
  enum class Kind : uint8_t { Name, NamespaceAttr, Tuple } kind = Kind::Name;
  std::string name;
  std::string attr;
  std::vector<Target> items;
  Loc loc;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind : uint8_t {
  Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope
};

struct Stmt {
  StmtKind kind;
  Loc loc;
  Stmt(StmtKind k, Loc l) : kind(k), loc(l) {}
  virtual ~Stmt() = default;
};

struct TextStmt : Stmt {
  std::string text;
  TextStmt(Loc l, std::string t) : Stmt(StmtKind::Text, l), text(std::move(t)) {}
};

struct OutputStmt : Stmt {
  ExprPtr expr;
  OutputStmt(Loc l, ExprPtr e) : Stmt(StmtKind::Output, l), expr(std::move(e)) {}
};

struct IfStmt : Stmt {
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body else_body;
  explicit IfStmt(Loc l) : Stmt(StmtKind::If, l) {}
};

struct ForStmt : Stmt {
  Target target;
  ExprPtr iter;
  ExprPtr filter;  // for x in y if filter
  bool recursive = false;
  Body body, else_body;
  explicit ForStmt(Loc l) : Stmt(StmtKind::For, l) {}
};

struct SetStmt : Stmt {
  Target target;
  ExprPtr value;
  explicit SetStmt(Loc l) : Stmt(StmtKind::Set, l) {}
};

struct SetBlockStmt : Stmt {
  Target target;
  std::vector<std::unique_ptr<FilterExpr>> filters;  // {% set x | trim %}
  Body body;
  explicit SetBlockStmt(Loc l) : Stmt(StmtKind::SetBlock, l) {}
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct MacroStmt : Stmt {
  std::string name;
  std::vector<MacroParam> params;
  Body body;
  // Whether the body reads varargs / kwargs / caller: Jinja accepts extra arguments only then.
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
  explicit MacroStmt(Loc l) : Stmt(StmtKind::Macro, l) {}
};

struct CallBlockStmt : Stmt {
  std::unique_ptr<CallExpr> call;
  MacroStmt caller;  // the body as a macro named "caller"
  explicit CallBlockStmt(Loc l) : Stmt(StmtKind::CallBlock, l), caller(l) {}
};

struct FilterBlockStmt : Stmt {
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
  explicit FilterBlockStmt(Loc l) : Stmt(StmtKind::FilterBlock, l) {}
};

struct WithStmt : Stmt {
  std::vector<std::pair<Target, ExprPtr>> assignments;
  Body body;
  explicit WithStmt(Loc l) : Stmt(StmtKind::With, l) {}
};

// A body rendered in place with no scope of its own: transformers' {% generation %} block.
struct ScopeStmt : Stmt {
  Body body;
  explicit ScopeStmt(Loc l) : Stmt(StmtKind::Scope, l) {}
};

struct LoopControlStmt : Stmt {
  explicit LoopControlStmt(StmtKind k, Loc l) : Stmt(k, l) {}
};

}  // namespace mmfp4::jinja
