#include "engine/prefix_cache.h"

#include <algorithm>

namespace mmfp4 {

uint64_t PrefixCache::chain(uint64_t prev, const int32_t* tokens, int64_t n) {
  // 64-bit mix (splitmix64 finaliser) over the previous hash and each token.
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  uint64_t h = mix(prev ^ 0x5bd1e995u);
  for (int64_t i = 0; i < n; ++i) h = mix(h ^ uint64_t(uint32_t(tokens[i])));
  return h;
}

int64_t PrefixCache::match(const std::vector<int32_t>& tokens, SeqCache& seq) {
  const int64_t bs = kv_.block_size();
  const int64_t max_blocks = (int64_t(tokens.size()) - 1) / bs;
  uint64_t h = 0;
  int64_t matched = 0;
  for (int64_t b = 0; b < max_blocks; ++b) {
    const int32_t* t = tokens.data() + b * bs;
    const uint64_t nh = chain(h, t, bs);
    auto it = entries_.find(nh);
    if (it == entries_.end() || it->second.prev != h || !std::equal(t, t + bs, it->second.tokens.begin())) break;
    kv_.retain(it->second.block);
    seq.blocks.push_back(it->second.block);
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    h = nh;
    ++matched;
  }
  seq.length = matched * bs;
  return matched * bs;
}

void PrefixCache::insert(const std::vector<int32_t>& tokens, const SeqCache& seq, int64_t computed,
                         int64_t& registered) {
  const int64_t bs = kv_.block_size();
  const int64_t full = std::min<int64_t>(computed / bs, int64_t(seq.blocks.size()));
  if (registered >= full) return;
  uint64_t h = 0;
  for (int64_t b = 0; b < full; ++b) {
    const int32_t* t = tokens.data() + b * bs;
    const uint64_t nh = chain(h, t, bs);
    if (b >= registered && !entries_.count(nh)) {
      kv_.retain(seq.blocks[size_t(b)]);
      lru_.push_front(nh);
      entries_.emplace(nh, Entry{seq.blocks[size_t(b)], std::vector<int32_t>(t, t + bs), h, lru_.begin()});
    }
    h = nh;
  }
  registered = full;
}

int64_t PrefixCache::evict(int64_t n) {
  int64_t freed = 0;
  for (auto it = lru_.end(); it != lru_.begin() && freed < n;) {
    --it;
    auto e = entries_.find(*it);
    if (kv_.refcount(e->second.block) == 1) {
      kv_.release(e->second.block);
      entries_.erase(e);
      it = lru_.erase(it);
      ++freed;
    }
  }
  return freed;
}

void PrefixCache::clear() {
  for (auto& [h, e] : entries_) kv_.release(e.block);
  entries_.clear();
  lru_.clear();
}

}  // namespace mmfp4
