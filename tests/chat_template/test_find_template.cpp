// find_chat_template_source: chat_template.jinja first, then tokenizer_config.json["chat_template"] (string or
// named list), then chat_template.json; named templates; folders without any.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "test_util.h"

namespace mmfp4 {
namespace {

namespace fs = std::filesystem;

class FindTemplate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mmfp4_chat_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel) << text;
  }
  std::string dir() const { return dir_.string(); }
  fs::path dir_;
};

TEST_F(FindTemplate, NoneAtAll) {
  EXPECT_FALSE(find_chat_template_source(dir()).has_value());
  write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_FALSE(find_chat_template_source(dir()).has_value());
  write("tokenizer_config.json", R"({"chat_template": null})");
  EXPECT_FALSE(find_chat_template_source(dir()).has_value());
}

TEST_F(FindTemplate, StringInTokenizerConfig) {
  write("tokenizer_config.json", R"({"chat_template": "{{ messages | length }}"})");
  EXPECT_EQ(find_chat_template_source(dir()), std::optional<std::string>("{{ messages | length }}"));
  EXPECT_EQ(find_chat_template_source(dir(), "default"), std::optional<std::string>("{{ messages | length }}"));
  EXPECT_THROW(find_chat_template_source(dir(), "tool_use"), Error);
}

TEST_F(FindTemplate, JinjaFileWins) {
  write("tokenizer_config.json", R"({"chat_template": "from config"})");
  write("chat_template.jinja", "from file\n");
  EXPECT_EQ(find_chat_template_source(dir()), std::optional<std::string>("from file\n"));
}

TEST_F(FindTemplate, NamedList) {
  write("tokenizer_config.json", R"({"chat_template": [{"name": "default", "template": "D"},
                                                       {"name": "tool_use", "template": "T"},
                                                       {"name": "rag", "template": "R"}]})");
  EXPECT_EQ(find_chat_template_source(dir()), std::optional<std::string>("D"));
  EXPECT_EQ(find_chat_template_source(dir(), "tool_use"), std::optional<std::string>("T"));
  EXPECT_EQ(find_chat_template_source(dir(), "rag"), std::optional<std::string>("R"));
  try {
    find_chat_template_source(dir(), "nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("default, tool_use, rag"), std::string::npos) << e.what();
  }
}

TEST_F(FindTemplate, NamedListWithoutDefault) {
  write("tokenizer_config.json", R"({"chat_template": [{"name": "a", "template": "A"}]})");
  EXPECT_THROW(find_chat_template_source(dir()), Error);
  EXPECT_EQ(find_chat_template_source(dir(), "a"), std::optional<std::string>("A"));
  write("tokenizer_config.json", R"({"chat_template": [{"name": "a"}]})");
  EXPECT_THROW(find_chat_template_source(dir(), "a"), Error);
  write("tokenizer_config.json", R"({"chat_template": 5})");
  EXPECT_THROW(find_chat_template_source(dir()), Error);
}

TEST_F(FindTemplate, AdditionalTemplatesFolder) {
  write("chat_template.jinja", "main");
  write("additional_chat_templates/tool_use.jinja", "tools");
  EXPECT_EQ(find_chat_template_source(dir()), std::optional<std::string>("main"));
  EXPECT_EQ(find_chat_template_source(dir(), "tool_use"), std::optional<std::string>("tools"));
  EXPECT_THROW(find_chat_template_source(dir(), "other"), Error);
}

TEST_F(FindTemplate, ProcessorChatTemplateJson) {
  write("chat_template.json", R"({"chat_template": "P"})");
  EXPECT_EQ(find_chat_template_source(dir()), std::optional<std::string>("P"));
}

TEST_F(FindTemplate, MalformedConfigIsAnError) {
  write("tokenizer_config.json", "{ not json");
  EXPECT_THROW(find_chat_template_source(dir()), Error);
}

}  // namespace
}  // namespace mmfp4
