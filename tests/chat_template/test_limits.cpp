// No template can run away: recursion depth, total steps, output and string sizes and nesting are bounded, and
// exceeding a bound is an ordinary TemplateError (as the fuzz target relies on).
#include <gtest/gtest.h>

#include "test_util.h"

namespace mmfp4 {
namespace {

std::string render_with(const std::string& tmpl, const ChatRenderOptions& o) {
  return ChatTemplate::parse(tmpl).render(json::parse("{}"), o);
}

TEST(ChatTemplateLimits, InfiniteRecursionStops) {
  EXPECT_THROW(render_with("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", {}), TemplateError);
  EXPECT_THROW(render_with("{% for x in [[1]] recursive %}{{ loop(x) }}{% endfor %}", {}), TemplateError);
  try {
    render_with("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {});
  } catch (const TemplateError& e) {
    EXPECT_NE(std::string(e.what()).find("recursion depth"), std::string::npos) << e.what();
  }
  // Deep but bounded recursion is fine.
  EXPECT_EQ(render_with("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% else %}ok{% endif %}{% endmacro %}{{ f(50) }}", {}),
            "ok");
}

TEST(ChatTemplateLimits, StepBudget) {
  ChatRenderOptions o;
  o.max_steps = 100000;
  EXPECT_THROW(render_with("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", o),
               TemplateError);
  EXPECT_NO_THROW(render_with("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", o));
}

TEST(ChatTemplateLimits, OutputAndStringSizes) {
  ChatRenderOptions o;
  o.max_output_bytes = 1 << 16;
  EXPECT_THROW(render_with("{% for i in range(100000) %}xxxxxxxx{% endfor %}", o), TemplateError);
  EXPECT_THROW(render_with("{{ 'x' * 100000000 }}", o), TemplateError);
  EXPECT_THROW(render_with("{{ [1] * 100000000 }}", o), TemplateError);
  EXPECT_THROW(render_with("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                           "{% endfor %}",
                           o),
               TemplateError);
  EXPECT_THROW(render_with("{{ 'abc' | center(100000000) }}", o), TemplateError);
  EXPECT_THROW(render_with("{{ 'x' | replace('', 'y' * 60000) }}", o), TemplateError);
  EXPECT_THROW(render_with("{{ '%100000000d' % 1 }}", o), TemplateError);
  EXPECT_THROW(render_with("{{ '{:>100000000}'.format(1) }}", o), TemplateError);
}

TEST(ChatTemplateLimits, DeepNestingIsASyntaxError) {
  std::string deep_parens(5000, '(');
  EXPECT_THROW(ChatTemplate::parse("{{ " + deep_parens + "1" + std::string(5000, ')') + " }}"), TemplateError);
  std::string long_chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) long_chain += " + 1";
  EXPECT_THROW(ChatTemplate::parse(long_chain + " }}"), TemplateError);
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  EXPECT_THROW(ChatTemplate::parse(ifs), TemplateError);
  std::string filters = "{{ 'a'";
  for (int i = 0; i < 5000; ++i) filters += " | upper";
  EXPECT_THROW(ChatTemplate::parse(filters + " }}"), TemplateError);
  // Realistic depth parses.
  EXPECT_NO_THROW(ChatTemplate::parse("{{ ((((((((((1)))))))))) + [[[[[1]]]]][0][0][0][0][0] }}"));
}

TEST(ChatTemplateLimits, IntegerOverflowIsAnError) {
  EXPECT_THROW(render_with("{{ 2 ** 64 }}", {}), TemplateError);
  EXPECT_THROW(render_with("{{ 9223372036854775807 + 1 }}", {}), TemplateError);
  EXPECT_THROW(render_with("{{ -(-9223372036854775807 - 1) }}", {}), TemplateError);
  EXPECT_THROW(ChatTemplate::parse("{{ 99999999999999999999 }}"), TemplateError);
  EXPECT_THROW(render_with("{{ (-9223372036854775807 - 1) // -1 }}", {}), TemplateError);
}

}  // namespace
}  // namespace mmfp4
