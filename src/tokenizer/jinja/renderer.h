// The tree-walking interpreter: runs a parsed template against a context with Jinja2's scoping rules (a for
// loop body gets a fresh scope per iteration, `if` gets none, macros close over the scope they were defined in),
// and enforces limits so that no template can run away: a step budget (loop iterations, calls, created
// elements), a call depth and an output size. One Renderer renders once; it is not shared between threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/render_options.h"

namespace mmfp4::jinja {

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
  const Value* find(std::string_view name) const;
  void set(std::string_view name, Value v);
};

class Renderer {
 public:
  Renderer(const std::string& template_name, const RenderOptions& opt);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // context: a Dict of variables. Throws TemplateError.
  std::string render(const Body& body, const Value& context);

  // ---- services for builtins ----
  const RenderOptions& options() const { return opt_; }
  size_t max_len() const { return opt_.max_output_bytes; }
  void charge(uint64_t steps);
  Value call(const Value& callee, Args& args);
  Value call_macro(const MacroStmt& m, const std::shared_ptr<Scope>& closure, Args& args);
  // Re-runs a recursive for loop on new items (loop(children)); returns its output.
  std::string recurse_loop(const ForStmt& f, const std::shared_ptr<Scope>& scope, const Value& items, int depth);
  // Remembers a list/dict/namespace that was mutated in place: it may now hold a reference cycle, broken at the
  // end of rendering so that shared ownership cannot leak.
  void note_mutation(const Value& container);
  bool run_test(std::string_view name, const Value& v, Args& args);
  Value run_filter(std::string_view name, const Value& v, Args& args);

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec_body(const Body& body, const std::shared_ptr<Scope>& scope);
  Flow exec(const Stmt& s, const std::shared_ptr<Scope>& scope);
  Flow exec_for(const ForStmt& f, const std::shared_ptr<Scope>& scope, const Value& iterable, int depth);
  void assign(const Target& t, const Value& v, const std::shared_ptr<Scope>& scope);
  std::string capture(const Body& body, const std::shared_ptr<Scope>& scope);
  Value capture_filtered(const Body& body, const std::vector<std::unique_ptr<FilterExpr>>& filters,
                         const std::shared_ptr<Scope>& scope);
  void emit(std::string_view s);

  Value eval(const Expr& e, const std::shared_ptr<Scope>& scope);
  Value eval_inner(const Expr& e, const std::shared_ptr<Scope>& scope);
  Value lookup(const std::string& name, const std::shared_ptr<Scope>& scope);
  Args eval_args(const CallArgs& a, const std::shared_ptr<Scope>& scope);
  Value apply_filter(const FilterExpr& f, const Value& input, const std::shared_ptr<Scope>& scope);

  [[noreturn]] void fail_at(Loc loc, const RuntimeFailure& f) const;

  std::string name_;
  RenderOptions opt_;
  std::string* out_ = nullptr;
  Value context_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  std::vector<Value> mutated_;
  std::vector<std::shared_ptr<Scope>> closures_;
};

}  // namespace mmfp4::jinja
