#include <cstring>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/python_ops.h"

namespace mmfp4::jinja {

ArgBinder::ArgBinder(const Args& args, std::string_view what, std::initializer_list<const char*> params)
    : values_(params.size()), given_(params.size(), false) {
  if (args.positional.size() > params.size())
    runtime_fail(what, "() takes at most ", params.size(), " argument(s) (", args.positional.size(), " given)");
  for (size_t i = 0; i < args.positional.size(); ++i) {
    values_[i] = args.positional[i];
    given_[i] = true;
  }
  for (const auto& [key, v] : args.keyword) {
    size_t i = 0;
    for (const char* p : params) {
      if (key == p) break;
      ++i;
    }
    if (i == params.size()) runtime_fail(what, "() got an unexpected keyword argument '", key, "'");
    if (given_[i]) runtime_fail(what, "() got multiple values for argument '", key, "'");
    values_[i] = v;
    given_[i] = true;
  }
}

namespace {

class NativeFunction : public Object {
 public:
  NativeFunction(std::string name, NativeFn fn, Value self) : name_(std::move(name)), fn_(fn), self_(std::move(self)) {}
  std::string type_name() const override { return self_.is_undefined() ? "function" : "builtin_function_or_method"; }
  std::string repr() const override {
    if (self_.is_undefined()) return "<function " + name_ + ">";
    return "<built-in method " + name_ + " of " + jinja::type_name(self_) + " object>";
  }
  bool callable() const override { return true; }
  Value call(Renderer& r, Args& args) const override { return fn_(r, self_, args); }

 private:
  std::string name_;
  NativeFn fn_;
  Value self_;
};

}  // namespace

Value make_function(std::string name, NativeFn fn, Value self) {
  return Value::object(std::make_shared<NativeFunction>(std::move(name), fn, std::move(self)));
}

}  // namespace mmfp4::jinja
