// Errors name the template, line and column: unknown syntax, tags, filters and tests at parse time, and
// runtime failures (type errors, undefined values, the template's own raise_exception) at the expression that
// failed.
#include <gtest/gtest.h>

#include "test_util.h"

namespace mmfp4 {
namespace {

using chat_test::render;

struct Where {
  TemplateError::Kind kind;
  uint32_t line, col;
  std::string what, message;
};

Where error_of(const std::string& tmpl, const std::string& ctx = "{}", const std::string& name = "chat_template") {
  try {
    ChatTemplate::parse(tmpl, name).render(json::parse(ctx));
  } catch (const TemplateError& e) {
    return {e.kind(), e.line(), e.column(), e.what(), e.message()};
  }
  ADD_FAILURE() << "no error for: " << tmpl;
  return {};
}

TEST(ChatTemplateErrors, ParseErrorsNameLineAndColumn) {
  auto e = error_of("line one\n  {{ x | nope }}", "{}", "tmpl");
  EXPECT_EQ(e.kind, TemplateError::Kind::Syntax);
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.col, 10u);  // the filter name
  EXPECT_EQ(e.what, "tmpl:2:10: syntax error: unknown filter 'nope'");

  e = error_of("{% if x %}\n{{ y is frobbed }}{% endif %}");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.col, 9u);
  EXPECT_NE(e.what.find("unknown test 'frobbed'"), std::string::npos);

  e = error_of("ab\ncd {% frob x %}");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.col, 7u);
  EXPECT_NE(e.what.find("unknown tag 'frob'"), std::string::npos);

  e = error_of("{% for x in y %}\n{% endif %}");
  EXPECT_EQ(e.line, 2u);
  EXPECT_NE(e.what.find("unexpected tag 'endif'; expected 'endfor' or 'else'"), std::string::npos) << e.what;

  e = error_of("{% if x %}\nabc");
  EXPECT_NE(e.what.find("opened at line 1 needs 'elif' or 'else' or 'endif'"), std::string::npos) << e.what;

  e = error_of("{{ 1 + }}");
  EXPECT_EQ(e.col, 8u);
  EXPECT_NE(e.what.find("unexpected '}}'"), std::string::npos) << e.what;

  e = error_of("x\n\n   {{ 'abc }}");
  EXPECT_EQ(e.line, 3u);
  EXPECT_EQ(e.col, 7u);
  EXPECT_NE(e.what.find("unterminated string"), std::string::npos);

  e = error_of("a {# never closed");
  EXPECT_EQ(e.col, 3u);
  EXPECT_NE(e.what.find("comment"), std::string::npos);

  e = error_of("{{ (1, 2] }}");
  EXPECT_EQ(e.col, 9u);
  EXPECT_NE(e.what.find("unexpected ']', expected ')'"), std::string::npos) << e.what;

  e = error_of("{% include 'x' %}");
  EXPECT_NE(e.what.find("'include' tag is not supported"), std::string::npos);

  e = error_of("{{ 'x' | urlize }}");
  EXPECT_NE(e.what.find("filter 'urlize' is not supported"), std::string::npos);

  e = error_of("{% break %}");
  EXPECT_NE(e.what.find("'break' outside of a for loop"), std::string::npos);

  e = error_of("{% macro m() %}{% for x in y %}{% endfor %}{% break %}{% endmacro %}");
  EXPECT_NE(e.what.find("outside of a for loop"), std::string::npos);
}

TEST(ChatTemplateErrors, ColumnsCountCharacters) {
  // Columns count code points, not bytes, so an editor finds the spot.
  auto e = error_of("é日本 {{ x | nope }}");
  EXPECT_EQ(e.col, 12u);
}

TEST(ChatTemplateErrors, InvalidUtf8IsASyntaxError) {
  auto e = error_of(std::string("ok\nab\xff"));
  EXPECT_EQ(e.kind, TemplateError::Kind::Syntax);
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.col, 3u);
  EXPECT_NE(e.what.find("UTF-8"), std::string::npos);
}

TEST(ChatTemplateErrors, RuntimeErrorsNameTheExpression) {
  auto e = error_of("{% for m in messages %}\n  {{ m.content + 1 }}\n{% endfor %}",
                    R"({"messages": [{"content": "a"}]})");
  EXPECT_EQ(e.kind, TemplateError::Kind::Runtime);
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.col, 16u);  // the '+'
  EXPECT_NE(e.what.find("can only concatenate str (not \"int\") to str"), std::string::npos) << e.what;

  e = error_of("x\n{{ messages[0].role.upper.x.y }}", R"({"messages": []})");
  EXPECT_EQ(e.line, 2u);
  EXPECT_NE(e.what.find("list object has no element 0"), std::string::npos) << e.what;

  e = error_of("{{ foo.bar }}");
  EXPECT_EQ(e.message, "'foo' is undefined");

  e = error_of("{{ d.a.b }}", R"({"d": {}})");
  EXPECT_EQ(e.message, "'dict object' has no attribute 'a'");

  e = error_of("\n\n{{ 1 // 0 }}");
  EXPECT_EQ(e.line, 3u);
  EXPECT_NE(e.what.find("division or modulo by zero"), std::string::npos);

  e = error_of("{% set x = 1 %}{% set x.y = 2 %}");
  EXPECT_EQ(e.col, 16u);
  EXPECT_NE(e.what.find("non-namespace"), std::string::npos);
}

TEST(ChatTemplateErrors, RaiseExceptionKeepsTheMessage) {
  auto e = error_of("{% if messages | length == 0 %}\n  {{- raise_exception('No messages: ' ~ 0) }}\n{% endif %}",
                    R"({"messages": []})");
  EXPECT_EQ(e.kind, TemplateError::Kind::Raised);
  EXPECT_EQ(e.message, "No messages: 0");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.what, "chat_template:2:7: raise_exception: No messages: 0");
  // Raised inside a macro and a filter argument: still the innermost position.
  e = error_of("{% macro check(x) %}{% if not x %}{{ raise_exception('bad ' ~ x) }}{% endif %}{% endmacro %}\n"
               "{{ check(0) }}");
  EXPECT_EQ(e.kind, TemplateError::Kind::Raised);
  EXPECT_EQ(e.line, 1u);
  EXPECT_EQ(e.message, "bad 0");
}

TEST(ChatTemplateErrors, TemplateErrorIsAnMmfp4Error) {
  try {
    ChatTemplate::parse("{{ x | nope }}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template:1:8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mmfp4
