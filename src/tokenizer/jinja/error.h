// Errors of the template engine. A TemplateError names the template, line and column ("chat_template:12:5: ...")
// and keeps the bare message apart, so a server can show raise_exception's text as the template author wrote it.
// Inside the interpreter, builtins throw RuntimeFailure (no position); the evaluator adds the position of the
// innermost expression or statement that was running.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/error.h"

namespace mmfp4 {

class TemplateError : public Error {
 public:
  enum class Kind { Syntax, Runtime, Raised };  // Raised: the template called raise_exception(msg)
  TemplateError(Kind kind, std::string name, uint32_t line, uint32_t column, std::string message);
  Kind kind() const { return kind_; }
  const std::string& template_name() const { return name_; }
  uint32_t line() const { return line_; }
  uint32_t column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  Kind kind_;
  std::string name_;
  uint32_t line_, column_;
  std::string message_;
};

namespace jinja {

struct Loc {
  uint32_t line = 0;
  uint32_t col = 0;
};

class RuntimeFailure : public std::runtime_error {
 public:
  explicit RuntimeFailure(const std::string& msg, bool raised = false)
      : std::runtime_error(msg), raised_(raised) {}
  bool raised() const { return raised_; }

 private:
  bool raised_;
};

template <typename... Args>
[[noreturn]] void runtime_fail(Args&&... args) {
  throw RuntimeFailure(cat(std::forward<Args>(args)...));
}

}  // namespace jinja
}  // namespace mmfp4
