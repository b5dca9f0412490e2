// Bad or unsupported tokenizer files fail at load with a message naming the file, the component and what is
// wrong: never a tokenizer that silently encodes differently.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

using namespace mmfp4;

namespace {

const char* kModel = R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";

std::string file_with(const std::string& part, const std::string& json, const std::string& model = kModel) {
  std::string s = R"({"version": "1.0", "added_tokens": [], )";
  for (const char* k : {"normalizer", "pre_tokenizer", "post_processor", "decoder"})
    s += std::string("\"") + k + "\": " + (part == k ? json : "null") + ", ";
  return s + "\"model\": " + model + "}";
}

// Loading `text` fails with a message containing each of `needles`.
void expect_error(const std::string& text, std::initializer_list<const char*> needles,
                  const std::string& config = "") {
  try {
    Tokenizer::from_json(text, config, "models/x");
    ADD_FAILURE() << "no error for " << text.substr(0, 200);
  } catch (const Error& e) {
    std::string m = e.what();
    for (const char* n : needles) EXPECT_NE(m.find(n), std::string::npos) << "'" << n << "' not in: " << m;
  }
}

}  // namespace

TEST(TokenizerErrors, MalformedJson) {
  expect_error("{\"model\": ", {"models/x/tokenizer.json", "line 1"});
  expect_error(file_with("", ""), {"models/x/tokenizer_config.json"}, "{bad");
}

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  expect_error(file_with("normalizer", R"({"type": "BertNormalizer"})"), {"tokenizer.json", "normalizer", "BertNormalizer"});
  expect_error(file_with("pre_tokenizer", R"({"type": "Sequence", "pretokenizers": [{"type": "UnicodeScripts"}]})"),
               {"pre_tokenizer.pretokenizers[0]", "UnicodeScripts"});
  expect_error(file_with("decoder", R"({"type": "CTC"})"), {"decoder", "CTC"});
  expect_error(file_with("post_processor", R"({"type": "Weird"})"), {"post_processor", "Weird"});
  expect_error(file_with("", "", R"({"type": "WordPiece", "vocab": {}})"), {"model", "WordPiece"});
  expect_error(file_with("", "", R"({"type": "Unigram", "vocab": []})"), {"model", "Unigram"});
  expect_error(file_with("decoder", R"({"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "ByteFallback"}]})"),
               {"decoder.decoders[1]", "joins all tokens"});
}

TEST(TokenizerErrors, BadFields) {
  expect_error(file_with("", "", R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]})"),
               {"model (BPE)", "merge #0", "\"b\" is not in the vocabulary"});
  expect_error(file_with("", "", R"({"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]})"),
               {"the result \"ab\" is not in the vocabulary"});
  expect_error(file_with("", "", R"({"type": "BPE", "vocab": {"a": -3}, "merges": []})"), {"out of range"});
  expect_error(file_with("", "", R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]})"), {"merges[0]"});
  expect_error(file_with("", "", R"({"type": "BPE", "vocab": {"a": 0}})"), {"missing field \"merges\""});
  expect_error(file_with("", "", R"({"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []})"), {"dropout"});
  expect_error(file_with("pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "(x"}, "behavior": "Isolated", "invert": false})"),
               {"pre_tokenizer (Split)", "does not compile", "(x"});
  expect_error(file_with("pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "[^\\S]"}, "behavior": "Isolated", "invert": false})"),
               {"pre_tokenizer (Split)", "bracket class"});
  expect_error(file_with("pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Sideways", "invert": false})"),
               {"unknown split behavior 'Sideways'"});
  expect_error(file_with("pre_tokenizer", R"({"type": "Metaspace", "replacement": "ab"})"), {"replacement", "one character"});
  expect_error(file_with("normalizer", R"({"type": "Prepend"})"), {"normalizer (Prepend)", "missing field \"prepend\""});
  expect_error(file_with("post_processor", R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {}})"),
               {"post_processor (TemplateProcessing).single[0]", "<s>"});
  expect_error(R"({"version": "2.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})", {"version"});
  expect_error(file_with("", "", "[]").substr(0, 0) + R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": [{"id": 5}]})",
               {"added_tokens[0]", "content"});
  expect_error(file_with("", ""), {"bos_token"}, R"({"bos_token": 5})");
}

TEST(TokenizerErrors, MissingFolder) {
  try {
    Tokenizer::from_dir("/nonexistent/model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model: no tokenizer.json"), std::string::npos) << e.what();
  }
}
