// Jinja2 semantics feature by feature: 200+ small templates (whitespace control, scoping, Undefined, Python
// operators, every filter, test, method and global) render as Python Jinja2 renders them
// (expected_semantics.json, from data/make_expected.py), or fail where it fails. Below, the behaviours Python
// cannot give the expectation for: the deliberate extensions beyond transformers' sandbox.
#include <gtest/gtest.h>

#include "test_util.h"

namespace mmfp4 {
namespace {

using chat_test::load_json;
using chat_test::pinned_options;
using chat_test::render;

TEST(ChatTemplateSemantics, MatchesPythonJinja2) {
  json::Value expected = load_json("expected_semantics.json");
  const auto& cases = expected["cases"].as_array();
  ASSERT_GT(cases.size(), 200u);
  for (const json::Value& c : cases) {
    const std::string& name = c["name"].as_string();
    const std::string& tmpl = c["template"].as_string();
    SCOPED_TRACE(name + ": " + tmpl);
    if (const json::Value* out = c.find("output")) {
      std::string got;
      try {
        got = ChatTemplate::parse(tmpl, name).render(c["context"], pinned_options());
      } catch (const std::exception& e) {
        ADD_FAILURE() << name << " threw " << e.what();
        continue;
      }
      EXPECT_EQ(got, out->as_string()) << name;
      continue;
    }
    const json::Value& err = c["error"];
    try {
      std::string got = ChatTemplate::parse(tmpl, name).render(c["context"], pinned_options());
      ADD_FAILURE() << name << ": Python raised '" << err["message"].as_string() << "', we rendered '" << got << "'";
    } catch (const TemplateError& e) {
      // Syntax errors in Python are syntax errors here (found before rendering), on the same line.
      if (err["type"].as_string() == "syntax") {
        EXPECT_EQ(e.kind(), TemplateError::Kind::Syntax) << e.what();
        if (const json::Value* line = err.find("line"); line && line->is_int()) {
          EXPECT_EQ(int64_t(e.line()), line->as_int()) << e.what();
        }
      }
      if (err["type"].as_string() == "raised") {
        EXPECT_EQ(e.kind(), TemplateError::Kind::Raised);
        EXPECT_EQ(e.message(), err["message"].as_string());
      }
    }
  }
}

// transformers' ImmutableSandboxedEnvironment refuses in-place mutation; templates written for other engines
// use it, so we accept it with Python's aliasing (a strict superset: such templates fail in transformers).
TEST(ChatTemplateSemantics, InPlaceMutationIsAccepted) {
  EXPECT_EQ(render("{% set l = [1] %}{% set m = l %}{{ l.append(2) }}{{ m }}{{ l.pop() }}{{ l }}"), "None[1, 2]2[1]");
  EXPECT_EQ(render("{% set l = [] %}{% for i in range(3) %}{% set _ = l.append(i * i) %}{% endfor %}{{ l }}"),
            "[0, 1, 4]");
  EXPECT_EQ(render("{% set l = [1] %}{% set _ = l.extend([2, 3]) %}{% set _ = l.insert(0, 0) %}{{ l }}"),
            "[0, 1, 2, 3]");
  EXPECT_EQ(render("{% set d = {'a': 1} %}{% set _ = d.update({'b': 2}, c=3) %}{{ d }}{{ d.pop('a') }}{{ d }}"
                   "{{ d.setdefault('z', 9) }}{{ d | length }}"),
            "{'a': 1, 'b': 2, 'c': 3}1{'b': 2, 'c': 3}93");
  EXPECT_THROW(render("{{ [].pop() }}"), TemplateError);
  EXPECT_THROW(render("{{ {}.pop('x') }}"), TemplateError);
}

// A container holding itself prints as Python prints it, and (under ASan) leaks nothing.
TEST(ChatTemplateSemantics, SelfReferenceIsSafe) {
  EXPECT_EQ(render("{% set l = [1] %}{% set _ = l.append(l) %}{{ l }}"), "[1, [...]]");
  EXPECT_THROW(render("{% set l = [] %}{% set _ = l.append(l) %}{{ l | tojson }}"), TemplateError);
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns.me.me is defined }}"), "True");
  EXPECT_EQ(render("{% set d = {} %}{% set _ = d.update(me=d) %}{{ d }}"), "{'me': {...}}");
  // A macro stored in the scope it closes over.
  EXPECT_EQ(render("{% macro m() %}x{% endmacro %}{% set ns = namespace(f=m) %}{{ ns.f() }}"), "x");
}

TEST(ChatTemplateSemantics, ContextDefaultsLikeApplyChatTemplate) {
  // tools/documents are None and add_generation_prompt false when the caller leaves them out.
  EXPECT_EQ(render("{{ tools is defined }}{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }}"),
            "TrueTrueTrueFalse");
  EXPECT_EQ(render("{{ tools | length }}", R"({"tools": [{"a": 1}]})"), "1");
  EXPECT_THROW(ChatTemplate::parse("x").render(json::parse("[1]")), Error);
}

TEST(ChatTemplateSemantics, JsonContextTypes) {
  EXPECT_EQ(render("{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}|{{ f }}|{{ g }}",
                   R"({"a": 1, "b": 2.5, "c": true, "d": null, "e": "s", "f": [1, "x"], "g": {"k": [null]}})"),
            "1|2.5|True|None|s|[1, 'x']|{'k': [None]}");
  // Objects keep their key order, as Python dicts do, through iteration and tojson.
  EXPECT_EQ(render("{% for k in o %}{{ k }}{% endfor %}{{ o | tojson }}", R"({"o": {"z": 1, "a": 2, "m": 3}})"),
            "zam{\"z\": 1, \"a\": 2, \"m\": 3}");
}

TEST(ChatTemplateSemantics, LargeDictsLookUpByIndex) {
  std::string ctx = "{\"d\": {";
  for (int i = 0; i < 100; ++i) ctx += (i ? ", " : "") + std::string("\"k") + std::to_string(i) + "\": " + std::to_string(i);
  ctx += "}}";
  EXPECT_EQ(render("{{ d.k0 }} {{ d.k57 }} {{ d['k99'] }} {{ 'k42' in d }} {{ 'k100' in d }} {{ d | length }}", ctx),
            "0 57 99 True False 100");
  EXPECT_EQ(render("{% set _ = d.pop('k3') %}{{ d.k4 }} {{ d.k3 is defined }} {{ d | length }}", ctx), "4 False 99");
}

}  // namespace
}  // namespace mmfp4
