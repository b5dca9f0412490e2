// Prefix caching: full KV blocks of computed prompts are kept, keyed by a hash chain over their tokens (a block's
// key covers every token before it too), so a later request with the same prefix (a chat's next turn, a shared
// system prompt) reuses them instead of recomputing. Shared blocks are always full and never written again: a
// sequence only writes positions past its shared prefix, into blocks of its own, so sharing needs no copies.
// The cache holds one reference per block; unreferenced cached blocks are evicted least-recently-used first when
// the pool runs short.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "kv/kv_cache.h"

namespace mmfp4 {

class PrefixCache {
 public:
  explicit PrefixCache(KVCache& kv) : kv_(kv) {}

  // Hash of a block given the previous block's hash.
  static uint64_t chain(uint64_t prev, const int32_t* tokens, int64_t n);

  // Reuses cached blocks for the longest prefix of `tokens` made of full blocks, leaving at least the last token
  // uncomputed (its logits are needed). Appends the blocks (retained) to `seq` and returns the tokens covered.
  int64_t match(const std::vector<int32_t>& tokens, SeqCache& seq);
  // Registers the full blocks of `seq` that hold computed tokens [0, computed) and are not cached yet.
  // `registered` counts the sequence's blocks already offered (updated).
  void insert(const std::vector<int32_t>& tokens, const SeqCache& seq, int64_t computed, int64_t& registered);
  // Frees up to n blocks that only the cache holds; returns how many were freed.
  int64_t evict(int64_t n);
  int64_t cached_blocks() const { return int64_t(entries_.size()); }
  void clear();

 private:
  struct Entry {
    int32_t block;
    std::vector<int32_t> tokens;  // the block's tokens, to rule out hash collisions
    uint64_t prev;
    std::list<uint64_t>::iterator lru;
  };
  KVCache& kv_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;  // front = most recently used
};

}  // namespace mmfp4
