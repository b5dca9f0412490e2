// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocabulary, ranked merges, and the algorithm that
// turns one pre-token into ids exactly as Hugging Face's Rust implementation does:
//   1. ignore_merges: a pre-token that is itself in the vocabulary is one token.
//   2. Split it into characters (continuing_subword_prefix before all but the first, end_of_word_suffix after the
//      last); a character missing from the vocabulary becomes its <0xXX> byte tokens (byte_fallback), or the unk
//      token (consecutive ones fused with fuse_unk), or is dropped when there is no unk token.
//   3. Repeatedly apply the lowest-ranked merge among adjacent pairs (leftmost first on ties), with a min-heap
//      over (rank, position) and lazy invalidation of stale entries.
// Results of step 2-3 are cached per pre-token in a sharded, mutex-protected cache, so encoding is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"

namespace mmfp4 {

class BpeCache;

class BpeModel {
 public:
  // `what` names the place for errors ("tokenizer.json: model").
  BpeModel(const json::Value& model, const std::string& what);
  ~BpeModel();

  // Appends the ids of one pre-token. With raw_bytes, `piece` holds raw bytes that a ByteLevel pre-tokenizer
  // would have mapped to byte-level characters; the model maps them itself (and caches by the raw bytes).
  void tokenize(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr for an id the vocabulary does not have.
  const std::string_view* id_to_token(int32_t id) const;
  int32_t max_id() const { return int32_t(id_to_token_.size()) - 1; }
  size_t vocab_count() const { return vocab_.size(); }
  size_t merge_count() const { return merges_.size(); }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  // Open-addressing table (linear probing) from a pair of ids to its merge: the innermost lookup of encoding.
  class MergeTable {
   public:
    void reserve(size_t n);
    void insert(int32_t a, int32_t b, Merge m);  // replaces an existing pair (the later merge wins, as in HF)
    const Merge* find(int32_t a, int32_t b) const;
    size_t size() const { return count_; }

   private:
    static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
    size_t slot(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }
    std::vector<uint64_t> keys_;
    std::vector<Merge> vals_;
    int shift_ = 64;
    size_t count_ = 0;
  };

  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  void add_merge(const std::string& a, const std::string& b, uint32_t rank, const std::string& what);
  int32_t char_id(std::string_view ch, bool first, bool last) const;

  std::string arena_;                                      // every vocabulary string, back to back
  std::vector<std::string_view> id_to_token_;              // [max id + 1] views into arena_ (empty data = hole)
  std::vector<bool> has_id_;
  std::unordered_map<std::string_view, int32_t> vocab_;    // token -> id
  MergeTable merges_;
  std::vector<int32_t> byte_char_id_;                      // [256] id of each byte's byte-level character, -1 none
  std::vector<int32_t> byte_fallback_id_;                  // [256] id of "<0xXX>", -1 none
  std::vector<int32_t> ascii_id_;                          // [0x800] id of each code point < U+0800 alone, -1 none
  std::optional<int32_t> unk_id_;
  std::string unk_token_, prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::unique_ptr<BpeCache> cache_;
};

}  // namespace mmfp4
