// The real chat templates (Qwen3, DeepSeek-V3, Llama 3 / 3.1 / 3.2, GLM-4.6 / 4.7, ChatML) render every test
// conversation exactly as Python Jinja2 does in transformers' environment (expected_templates.json, written by
// data/make_expected.py), including the conversations where the template raises an error.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "test_util.h"

namespace mmfp4 {
namespace {

using chat_test::data_dir;
using chat_test::load_json;
using chat_test::pinned_options;

const ChatTemplate& template_named(const std::string& name) {
  static std::map<std::string, ChatTemplate> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache.emplace(name, ChatTemplate::parse(read_file(data_dir() + "/templates/" + name + ".jinja"), name)).first;
  return it->second;
}

TEST(ChatTemplateReal, MatchesPythonJinja2) {
  json::Value expected = load_json("expected_templates.json");
  const auto& cases = expected["cases"].as_array();
  ASSERT_GT(cases.size(), 100u);
  size_t outputs = 0, errors = 0;
  for (const json::Value& c : cases) {
    const std::string label = c["template"].as_string() + " / " + c["conversation"].as_string();
    SCOPED_TRACE(label);
    const ChatTemplate& t = template_named(c["template"].as_string());
    if (const json::Value* out = c.find("output")) {
      ++outputs;
      std::string got;
      ASSERT_NO_THROW(got = t.render(c["context"], pinned_options())) << label;
      EXPECT_EQ(got, out->as_string()) << label;
      continue;
    }
    ++errors;
    const json::Value& err = c["error"];
    try {
      t.render(c["context"], pinned_options());
      ADD_FAILURE() << label << ": Python raised " << err["message"].as_string() << " but we rendered";
    } catch (const TemplateError& e) {
      if (err["type"].as_string() == "raised") {
        EXPECT_EQ(e.kind(), TemplateError::Kind::Raised) << e.what();
        EXPECT_EQ(e.message(), err["message"].as_string());
      }
    }
  }
  // Both paths are exercised: most conversations render, a few hit the templates' raise_exception.
  EXPECT_GT(outputs, 100u);
  EXPECT_GT(errors, 3u);
}

// The template files under data/ are the ones the shared fixtures ship, found through find_chat_template_source.
TEST(ChatTemplateReal, FixtureTemplatesAreFound) {
  const std::string shared = MMFP4_SHARED_DIR;
  const std::pair<const char*, const char*> fixtures[] = {
      {"/fixtures/tokenizers/qwen3", "qwen3"},
      {"/fixtures/tokenizers/deepseek_v3", "deepseek_v3"},
      {"/fixtures/tokenizers/llama3_1", "llama3_fixture"},
      {"/models/tiny-qwen3", "chatml"},
      {"/models/tiny-glm4-moe-lite", "chatml"},
  };
  for (const auto& [dir, name] : fixtures) {
    if (!is_directory(shared + dir)) GTEST_SKIP() << "shared fixtures not found at " << shared;
    auto src = find_chat_template_source(shared + dir);
    ASSERT_TRUE(src.has_value()) << dir;
    EXPECT_EQ(*src, read_file(data_dir() + "/templates/" + name + ".jinja")) << dir;
  }
  // The tiny tokenizer fixture has no template at all.
  if (is_directory(shared + "/fixtures/tokenizers/tiny")) {
    EXPECT_FALSE(find_chat_template_source(shared + "/fixtures/tokenizers/tiny").has_value());
  }
}

// render() is const and keeps all state per call: one parsed template, many threads, identical prompts.
TEST(ChatTemplateReal, ConcurrentRendersAgree) {
  json::Value expected = load_json("expected_templates.json");
  std::vector<const json::Value*> qwen;
  for (const json::Value& c : expected["cases"].as_array())
    if (c["template"].as_string() == "qwen3" && c.contains("output")) qwen.push_back(&c);
  ASSERT_FALSE(qwen.empty());
  const ChatTemplate t = ChatTemplate::parse(read_file(data_dir() + "/templates/qwen3.jinja"));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 5; ++rep)
        for (const json::Value* c : qwen)
          if (t.render((*c)["context"], pinned_options()) != (*c)["output"].as_string()) ++mismatches[size_t(k)];
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// Without a pinned clock strftime_now reads the local time: Llama 3.2 writes today's date.
TEST(ChatTemplateReal, StrftimeNowUsesLocalClockByDefault) {
  const ChatTemplate t = ChatTemplate::parse(read_file(data_dir() + "/templates/llama3_2_instruct.jinja"));
  json::Value ctx = json::parse(R"({"messages": [{"role": "user", "content": "hi"}], "bos_token": "<s>"})");
  std::string out = t.render(ctx);
  std::time_t now = std::time(nullptr);
  std::tm lt{};
  localtime_r(&now, &lt);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y", &lt);
  EXPECT_NE(out.find(std::string("Today Date: ")), std::string::npos);
  EXPECT_NE(out.find(buf), std::string::npos) << out;  // the current year
}

}  // namespace
}  // namespace mmfp4
