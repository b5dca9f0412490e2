// The tokenizer against Hugging Face's Rust `tokenizers` library: the four real tokenizer.json fixtures (Qwen3,
// DeepSeek-V3, Llama-3.1, our small model's) with their reference ids, and the hand-made tokenizers of
// tests/tokenizer/data/ (Llama-2 byte fallback, RoBERTa, subword prefix/suffix, rarer components) whose
// references tools/make_refs.js took from the same library. Every case also checks that the streaming decoder's
// output, pushed one id at a time, concatenates to decode().
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "core/json.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

using namespace mmfp4;

namespace {

std::vector<int32_t> ids_of(const json::Value& a) {
  std::vector<int32_t> v;
  for (const auto& x : a.as_array()) v.push_back(int32_t(x.as_int()));
  return v;
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  StreamDecoder sd(tok, skip);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  return out + sd.flush();
}

const json::Value& public_refs() {
  static const json::Value v = json::parse(read_file(MMFP4_SHARED_DIR "/fixtures/tokenizers/token_refs_public.json"));
  return v;
}

void check_fixture(const std::string& name) {
  auto tok = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/" + name);
  int n = 0;
  for (const json::Value& e : public_refs()[name].as_array()) {
    const std::string& text = e["text"].as_string();
    SCOPED_TRACE(name + ": \"" + text.substr(0, 60) + "\"");
    std::vector<int32_t> ids = ids_of(e["ids"]), with_special = ids_of(e["ids_with_special"]);
    EXPECT_EQ(tok->encode(text, false), ids);
    EXPECT_EQ(tok->encode(text, true), with_special);
    EXPECT_EQ(tok->decode(ids, false), e["decoded"].as_string());
    EXPECT_EQ(stream(*tok, with_special, false), tok->decode(with_special, false));
    EXPECT_EQ(stream(*tok, with_special, true), tok->decode(with_special, true));
    ++n;
  }
  EXPECT_EQ(n, 256);
}

}  // namespace

TEST(TokenizerFixtures, Qwen3) { check_fixture("qwen3"); }
TEST(TokenizerFixtures, DeepSeekV3) { check_fixture("deepseek_v3"); }
TEST(TokenizerFixtures, Llama31) { check_fixture("llama3_1"); }
TEST(TokenizerFixtures, Tiny) { check_fixture("tiny"); }

TEST(TokenizerFixtures, ConfigTokens) {
  auto qwen = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/qwen3");
  EXPECT_EQ(qwen->eos_token(), "<|im_end|>");
  EXPECT_EQ(qwen->eos_id(), 151645);
  EXPECT_EQ(qwen->bos_token(), "");
  EXPECT_FALSE(qwen->bos_id());
  EXPECT_EQ(qwen->vocab_size(), 151669);
  EXPECT_TRUE(qwen->is_special(151643));
  EXPECT_FALSE(qwen->is_special(151667));  // <think> is an added token, not a special one
  EXPECT_EQ(qwen->token_to_id("<think>"), 151667);
  EXPECT_EQ(qwen->id_to_token(151667), "<think>");
  EXPECT_EQ(qwen->id_to_token(9707), "Hello");
  EXPECT_FALSE(qwen->id_to_token(-1));
  EXPECT_FALSE(qwen->id_to_token(1 << 20));
  EXPECT_TRUE(qwen->config()["chat_template"].is_string());

  // DeepSeek-V3's bos_token is an AddedToken object; its config asks transformers to add BOS, which the Rust
  // library (and so encode() by default) does not do.
  auto ds = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/deepseek_v3");
  EXPECT_EQ(ds->bos_token(), "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
  EXPECT_EQ(ds->bos_id(), 0);
  EXPECT_EQ(ds->eos_id(), 1);
  EXPECT_EQ(ds->encode("Hi", true), ds->encode("Hi", false));
  TokenizerOptions hf;
  hf.add_bos_eos_from_config = true;
  auto ds_hf = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/deepseek_v3", hf);
  std::vector<int32_t> with_bos = ds->encode("Hi", false);
  with_bos.insert(with_bos.begin(), 0);
  EXPECT_EQ(ds_hf->encode("Hi", true), with_bos);
  EXPECT_EQ(ds_hf->encode("Hi", false), ds->encode("Hi", false));

  // Llama-3.1's post-processor adds <|begin_of_text|> itself: the option adds nothing more.
  auto llama = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/llama3_1", hf);
  EXPECT_EQ(llama->encode("Hi", true).front(), 128000);
  EXPECT_EQ(llama->encode("Hi", true).size(), llama->encode("Hi", false).size() + 1);
}

TEST(TokenizerFixtures, ModelFoldersLoad) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(MMFP4_SHARED_DIR "/models")) {
    if (!std::filesystem::exists(entry.path() / "tokenizer.json")) continue;
    auto tok = Tokenizer::from_dir(entry.path().string());
    std::string text = "The quick brown fox, 42 times.";
    EXPECT_EQ(tok->decode(tok->encode(text, true), false), text) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 4);
}

TEST(TokenizerFixtures, ConcurrentEncodeIsConsistent) {
  auto tok = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/tiny");
  const json::Array& refs = public_refs()["tiny"].as_array();
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (size_t i = t; i < refs.size(); i += 1)
          if (tok->encode(refs[i]["text"].as_string(), false) != ids_of(refs[i]["ids"])) ++failures[size_t(t)];
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

class TokenizerHandmade : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerHandmade, MatchesHuggingFace) {
  static const json::Value refs = json::parse(read_file(MMFP4_SOURCE_DIR "/tests/tokenizer/data/handmade_refs.json"));
  const std::string& name = GetParam();
  auto tok = Tokenizer::from_dir(MMFP4_SOURCE_DIR "/tests/tokenizer/data/" + name);
  ASSERT_TRUE(refs.contains(name));
  for (const json::Value& e : refs[name].as_array()) {
    const std::string& text = e["text"].as_string();
    SCOPED_TRACE(name + ": \"" + text.substr(0, 60) + "\"");
    std::vector<int32_t> ids = ids_of(e["ids"]), with_special = ids_of(e["ids_with_special"]);
    EXPECT_EQ(tok->encode(text, false), ids);
    EXPECT_EQ(tok->encode(text, true), with_special);
    EXPECT_EQ(tok->decode(with_special, false), e["decoded"].as_string());
    EXPECT_EQ(tok->decode(with_special, true), e["decoded_skip"].as_string());
    EXPECT_EQ(stream(*tok, with_special, false), e["decoded"].as_string());
    EXPECT_EQ(stream(*tok, with_special, true), e["decoded_skip"].as_string());
  }
}

INSTANTIATE_TEST_SUITE_P(Styles, TokenizerHandmade,
                         ::testing::Values("llama2_legacy", "llama2_metaspace", "roberta_style", "components",
                                           "subword_suffix"));
