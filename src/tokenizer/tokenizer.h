// The tokenizer of a Hugging Face model folder: tokenizer.json (+ tokenizer_config.json) -> a Tokenizer whose
// encode/decode give exactly the ids and text of Hugging Face's Rust `tokenizers` library (the one transformers
// uses). See docs/tokenizer.md for what is supported and how it works.
//
//   auto tok = mmfp4::Tokenizer::from_dir("models/qwen3");
//   std::vector<int32_t> ids = tok->encode("Hello world", /*add_special_tokens=*/true);
//   std::string text = tok->decode(ids, /*skip_special_tokens=*/false);
//
// A Tokenizer is immutable after loading; encode and decode may run on many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace mmfp4 {

class AddedVocab;
class BpeModel;
class Normalizer;
class PreTokenizer;
class PostProcessor;
class Decoder;

struct TokenizerOptions {
  // transformers' Llama-style tokenizers (LlamaTokenizerFast, e.g. DeepSeek-V3's) prepend BOS when
  // tokenizer_config.json says "add_bos_token": true (and append EOS for "add_eos_token": true), even when the
  // tokenizer.json post-processor does not; the Rust library alone does not. Off by default, so that encode()
  // matches the Rust library; on, encode(add_special_tokens=true) adds the missing BOS/EOS as transformers does.
  bool add_bos_eos_from_config = false;
};

class Tokenizer {
 public:
  // `dir` holds tokenizer.json and optionally tokenizer_config.json. Throws mmfp4::Error naming the file and the
  // component for anything unsupported or malformed: never a silent difference.
  static std::unique_ptr<Tokenizer> from_dir(const std::string& dir, const TokenizerOptions& options = {});
  // The same from the files' text; `what` names the source in errors (e.g. the folder).
  static std::unique_ptr<Tokenizer> from_json(const std::string& tokenizer_json_text,
                                              const std::string& tokenizer_config_json_text /* may be "" */,
                                              const std::string& what, const TokenizerOptions& options = {});
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text (valid UTF-8, else mmfp4::Error naming the byte offset) -> ids. add_special_tokens applies the
  // post-processor (e.g. Llama-3's <|begin_of_text|>). Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Ids -> text (always valid UTF-8). An id outside the vocabulary is an mmfp4::Error naming it.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  int32_t vocab_size() const;  // max id + 1 over the vocabulary and the added tokens
  std::optional<std::string> id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;
  // From tokenizer_config.json's bos_token/eos_token (a string or {"content": ...}).
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::string bos_token() const { return bos_token_; }  // "" if none
  std::string eos_token() const { return eos_token_; }  // "" if none
  // tokenizer_config.json (null if absent); the chat template code reads "chat_template" from it.
  const json::Value& config() const { return config_; }

 private:
  friend class StreamDecoder;
  Tokenizer();
  void load(const json::Value& tj, const std::string& what);
  void load_config(const std::string& what);
  // The token string HF's decoder sees for an id (an added token's text, else the vocabulary's); throws on a bad id.
  std::string_view token_text(int32_t id) const;
  bool skip_in_decode(int32_t id, bool skip_special_tokens) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<AddedVocab> added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<uint8_t> id_flags_;  // [vocab_size] kExists | kSpecial | kAdded
  json::Value config_;
  std::optional<int32_t> bos_id_, eos_id_;
  std::string bos_token_, eos_token_;
  bool add_bos_ = false, add_eos_ = false;  // from the config, when TokenizerOptions asks for it
  TokenizerOptions options_;
};

// Streaming detokenizer: push ids one at a time and get text only where it is final: at UTF-8 character
// boundaries (a character split over two tokens is never printed half) and where decoding more tokens cannot
// change it. The concatenation of all push() results and flush() equals tok.decode(all ids).
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tok, bool skip_special_tokens);
  // Text that became final with this id ("" if none yet). A bad id is an mmfp4::Error.
  std::string push(int32_t id);
  // The remainder (incomplete bytes as U+FFFD); the decoder then starts a new sequence.
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool started_ = false;                // some tokens were already emitted in this sequence
  std::vector<std::string> pending_;    // token strings since the last cut
};

}  // namespace mmfp4
