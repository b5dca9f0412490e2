// Added tokens of tokenizer.json ("added_tokens"): special tokens such as <|im_start|> and user-added words. They
// are matched in the text before normalization and pre-tokenization, so a model never sees them split:
//   1. tokens with "normalized": false are found in the original text;
//   2. the text between them is normalized;
//   3. tokens with "normalized": true are found (in their normalized form) in that normalized text.
// Matching is leftmost-longest and non-overlapping; a match failing `single_word` (a word character touches it)
// is skipped; `lstrip`/`rstrip` make the token swallow the whitespace before/after it. This is Hugging Face's
// AddedVocabulary, to the letter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "tokenizer/piece.h"

namespace mmfp4 {

class BpeModel;
class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

class AddedVocab {
 public:
  // `added` is the "added_tokens" array; ids follow Hugging Face: a content already in the model vocabulary keeps
  // the model's id.
  void load(const json::Value& added, const BpeModel& model, const Normalizer* normalizer, const std::string& what);

  // Step 1 (non-normalized tokens, on the original text) and step 3 (normalized tokens, on normalized pieces).
  void split_raw(std::vector<Piece>& pieces) const { split(pieces, raw_); }
  void split_normalized(std::vector<Piece>& pieces) const { split(pieces, normalized_); }

  const AddedToken* by_id(int32_t id) const;
  // The text decoding shows for an added token: its normalized form for normalized tokens (as in HF).
  const std::string* decoded_text(int32_t id) const;
  std::optional<int32_t> by_content(std::string_view content) const;
  bool is_special_content(std::string_view content) const;
  int32_t max_id() const { return max_id_; }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // A byte trie over the contents to match; `first_` filters the positions where a match can start.
  struct Trie {
    std::unordered_map<uint64_t, int32_t> edges;  // (node << 8 | byte) -> child node
    std::vector<int32_t> terminal{-1};           // node -> index into tokens_, -1 when no token ends there
    bool first[256] = {};
    bool empty() const { return terminal.size() == 1; }
    void add(std::string_view s, int32_t token);
  };
  void split(std::vector<Piece>& pieces, const Trie& trie) const;
  void split_one(const Piece& p, const Trie& trie, std::vector<Piece>& out) const;

  std::vector<AddedToken> tokens_;
  std::vector<std::string> normalized_text_;  // per token: content after the normalizer (normalized tokens)
  std::unordered_map<std::string, int32_t> by_content_;  // content -> index into tokens_
  std::unordered_map<int32_t, int32_t> by_id_;           // id -> index into tokens_
  std::unordered_map<std::string, bool> special_contents_;
  Trie raw_, normalized_;
  int32_t max_id_ = -1;
};

}  // namespace mmfp4
