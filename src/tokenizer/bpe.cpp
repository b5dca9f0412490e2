#include "tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <mutex>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_read.h"
#include "tokenizer/utf8.h"

namespace mmfp4 {

// ---------------------------------------------------------------------------------------------------------------
// Cache: pre-token -> ids. Natural text repeats a small set of words, so most pre-tokens skip the merge loop.
// 64 shards, each behind its own mutex, keep concurrent encoders from contending; a full shard is cleared (cheap,
// and the hot words come back at once).
// ---------------------------------------------------------------------------------------------------------------
class BpeCache {
 public:
  static constexpr size_t kShards = 64;
  static constexpr size_t kPerShard = 4096;
  static constexpr size_t kMaxKey = 256;  // longer pre-tokens are rare and not worth keeping (as in HF)

  bool get(std::string_view key, std::vector<int32_t>& out) {
    size_t h = std::hash<std::string_view>{}(key);
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view key, const int32_t* ids, size_t n) {
    if (key.size() > kMaxKey) return;
    size_t h = std::hash<std::string_view>{}(key);
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.map.size() >= kPerShard) s.map.clear();
    s.map.emplace(std::string(key), std::vector<int32_t>(ids, ids + n));
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map;
  };
  std::array<Shard, kShards> shards_;
};

// ---------------------------------------------------------------------------------------------------------------
// Merge table
// ---------------------------------------------------------------------------------------------------------------
void BpeModel::MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap *= 2;
  keys_.assign(cap, ~0ull);
  vals_.assign(cap, Merge{0, 0});
  shift_ = 64 - __builtin_ctzll(cap);
  count_ = 0;
}

void BpeModel::MergeTable::insert(int32_t a, int32_t b, Merge m) {
  MMFP4_ASSERT(count_ * 2 < keys_.size());
  uint64_t k = key(a, b);
  size_t mask = keys_.size() - 1;
  for (size_t i = slot(k);; i = (i + 1) & mask) {
    if (keys_[i] == k) {
      vals_[i] = m;
      return;
    }
    if (keys_[i] == ~0ull) {
      keys_[i] = k;
      vals_[i] = m;
      ++count_;
      return;
    }
  }
}

const BpeModel::Merge* BpeModel::MergeTable::find(int32_t a, int32_t b) const {
  if (keys_.empty()) return nullptr;
  uint64_t k = key(a, b);
  size_t mask = keys_.size() - 1;
  for (size_t i = slot(k);; i = (i + 1) & mask) {
    if (keys_[i] == k) return &vals_[i];
    if (keys_[i] == ~0ull) return nullptr;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------------
BpeModel::~BpeModel() = default;

BpeModel::BpeModel(const json::Value& m, const std::string& what) : cache_(std::make_unique<BpeCache>()) {
  if (const json::Value* d = m.find("dropout"); d && !d->is_null() && d->as_double() != 0.0)
    fail(what, ": BPE dropout ", d->as_double(), " is not supported (it makes encoding random)");
  unk_token_ = jr::str_or(m, "unk_token", "", what);
  prefix_ = jr::str_or(m, "continuing_subword_prefix", "", what);
  suffix_ = jr::str_or(m, "end_of_word_suffix", "", what);
  fuse_unk_ = jr::boolean_or(m, "fuse_unk", false, what);
  byte_fallback_ = jr::boolean_or(m, "byte_fallback", false, what);
  ignore_merges_ = jr::boolean_or(m, "ignore_merges", false, what);

  const json::Value& vocab = jr::field(m, "vocab", what);
  if (!vocab.is_object()) fail(what, ": \"vocab\" must be an object of token -> id");
  const json::Object& vo = vocab.as_object();
  size_t bytes = 0;
  int64_t max_id = -1;
  for (const auto& [tok, id] : vo) {
    if (!id.is_int()) fail(what, ": vocab id of \"", tok, "\" must be an integer");
    int64_t v = id.as_int();
    // Ids index dense tables: a negative or absurdly large id is a broken file, not a big vocabulary.
    if (v < 0 || v >= (1 << 24)) fail(what, ": vocab id ", v, " of \"", tok, "\" is out of range [0, 2^24)");
    max_id = std::max(max_id, v);
    bytes += tok.size();
  }
  arena_.reserve(bytes);
  std::vector<std::pair<size_t, size_t>> member_spans;  // arena span of each vocab member, in file order
  member_spans.reserve(vo.size());
  for (const auto& [tok, id] : vo) {
    member_spans.emplace_back(arena_.size(), tok.size());
    arena_ += tok;
  }
  // The arena no longer grows: views into it stay valid.
  id_to_token_.assign(size_t(max_id + 1), std::string_view());
  has_id_.assign(size_t(max_id + 1), false);
  vocab_.reserve(vo.size());
  size_t k = 0;
  for (const auto& [tok, id] : vo) {
    std::string_view view = std::string_view(arena_).substr(member_spans[k].first, member_spans[k].second);
    ++k;
    size_t i = size_t(id.as_int());
    if (has_id_[i]) log_warn(what, ": vocab id ", i, " is used by more than one token; decoding uses \"", tok, "\"");
    id_to_token_[i] = view;
    has_id_[i] = true;
    vocab_[view] = int32_t(i);
  }

  if (!unk_token_.empty()) unk_id_ = token_to_id(unk_token_);

  ascii_id_.assign(0x800, -1);
  for (uint32_t cp = 0; cp < 0x800; ++cp)
    if (auto id = token_to_id(utf8::encode(cp))) ascii_id_[cp] = *id;
  byte_char_id_.assign(256, -1);
  byte_fallback_id_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    if (auto id = token_to_id(byte_level::utf8_of(uint8_t(b)))) byte_char_id_[b] = *id;
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    if (auto id = token_to_id(name)) byte_fallback_id_[b] = *id;
  }

  const json::Array& merges = jr::array(m, "merges", what);
  merges_.reserve(merges.size());
  uint32_t rank = 0;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json::Value& e = merges[i];
    if (e.is_string()) {
      // The legacy form "a b": exactly one space ("#version" header lines are skipped, as in HF).
      const std::string& s = e.as_string();
      if (s.rfind("#version", 0) == 0) continue;
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(what, ": merges[", i, "] \"", s, "\" must be two tokens separated by one space");
      add_merge(s.substr(0, sp), s.substr(sp + 1), rank++, what);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      add_merge(e[0].as_string(), e[1].as_string(), rank++, what);
    } else {
      fail(what, ": merges[", i, "] must be \"a b\" or [\"a\", \"b\"]");
    }
  }
}

void BpeModel::add_merge(const std::string& a, const std::string& b, uint32_t rank, const std::string& what) {
  auto ia = token_to_id(a), ib = token_to_id(b);
  if (!ia) fail(what, ": merge #", rank, " (\"", a, "\", \"", b, "\"): \"", a, "\" is not in the vocabulary");
  if (!ib) fail(what, ": merge #", rank, " (\"", a, "\", \"", b, "\"): \"", b, "\" is not in the vocabulary");
  // The merged token drops the continuing-subword prefix of the right part.
  std::string merged = a;
  if (!prefix_.empty()) {
    if (b.compare(0, prefix_.size(), prefix_) != 0)
      fail(what, ": merge #", rank, " (\"", a, "\", \"", b, "\"): the right part lacks the continuing_subword_prefix \"",
           prefix_, "\"");
    merged.append(b, prefix_.size());
  } else {
    merged += b;
  }
  auto id = token_to_id(merged);
  if (!id) fail(what, ": merge #", rank, " (\"", a, "\", \"", b, "\"): the result \"", merged, "\" is not in the vocabulary");
  merges_.insert(*ia, *ib, Merge{rank, *id});
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string_view* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !has_id_[size_t(id)]) return nullptr;
  return &id_to_token_[size_t(id)];
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------------------
int32_t BpeModel::char_id(std::string_view ch, bool first, bool last) const {
  bool plain = (first || prefix_.empty()) && (!last || suffix_.empty());
  if (plain) {
    size_t i = 0;
    uint32_t cp = utf8::next(ch, i);
    if (cp < 0x800) return ascii_id_[cp];
    auto id = token_to_id(ch);
    return id ? *id : -1;
  }
  std::string s;
  if (!first) s += prefix_;
  s += ch;
  if (last) s += suffix_;
  auto id = token_to_id(s);
  return id ? *id : -1;
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;
  uint32_t len;  // bytes of the pre-token it covers; 0 marks a symbol merged into its left neighbour
};

struct QueueEntry {
  uint32_t rank;
  uint32_t pos;
  int32_t new_id;
  // std heaps are max-heaps: "greater" means later, so the top is the lowest rank, then the leftmost position.
  bool operator<(const QueueEntry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<QueueEntry> heap;
  std::string mapped;
  std::vector<int32_t> ids;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  Scratch& sc = scratch();
  std::vector<Symbol>& sym = sc.symbols;
  sym.clear();
  auto add = [&](int32_t id, uint32_t len) {
    int32_t n = int32_t(sym.size());
    if (n > 0) sym.back().next = n;
    sym.push_back({id, n - 1, -1, len});
  };
  // Pending unknown characters (fused into one unk symbol with fuse_unk).
  bool have_unk = false;
  uint32_t unk_len = 0;
  auto need_unk = [&]() -> int32_t {
    if (!unk_id_) fail("tokenizer: BPE unk_token \"", unk_token_, "\" is not in the vocabulary");
    return *unk_id_;
  };
  size_t i = 0;
  while (i < w.size()) {
    size_t b = i;
    i += utf8::seq_len(uint8_t(w[i]));
    std::string_view ch = w.substr(b, i - b);
    bool first = b == 0, last = i >= w.size();
    int32_t id = char_id(ch, first, last);
    if (id >= 0) {
      if (have_unk) {
        add(need_unk(), unk_len);
        have_unk = false;
      }
      add(id, uint32_t(ch.size()));
      continue;
    }
    if (byte_fallback_) {
      std::string s;
      if (!first) s += prefix_;
      s += ch;
      if (last) s += suffix_;
      bool all = true;
      for (char c : s) all &= byte_fallback_id_[uint8_t(c)] >= 0;
      if (all) {
        // As in HF, byte tokens go in before a pending unk (which is only flushed by a known character).
        for (char c : s) add(byte_fallback_id_[uint8_t(c)], 1);
        continue;
      }
    }
    if (!unk_token_.empty()) {
      if (have_unk && fuse_unk_) {
        unk_len += uint32_t(ch.size());
      } else {
        if (have_unk) add(need_unk(), unk_len);
        need_unk();
        have_unk = true;
        unk_len = uint32_t(ch.size());
      }
    }
    // No unk token: the character is dropped, as Hugging Face does.
  }
  if (have_unk) add(need_unk(), unk_len);

  std::vector<QueueEntry>& heap = sc.heap;
  heap.clear();
  for (size_t k = 0; k + 1 < sym.size(); ++k)
    if (const Merge* m = merges_.find(sym[k].id, sym[k + 1].id)) heap.push_back({m->rank, uint32_t(k), m->new_id});
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    QueueEntry top = heap.back();
    heap.pop_back();
    Symbol& cur = sym[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    Symbol right = sym[size_t(cur.next)];
    // A stale entry: the pair at this position changed since it was queued.
    const Merge* m = merges_.find(cur.id, right.id);
    if (!m || m->new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    sym[size_t(cur.next)].len = 0;
    cur.next = right.next;
    if (right.next >= 0) sym[size_t(right.next)].prev = int32_t(top.pos);
    if (cur.prev >= 0) {
      if (const Merge* pm = merges_.find(sym[size_t(cur.prev)].id, cur.id)) {
        heap.push_back({pm->rank, uint32_t(cur.prev), pm->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
    if (cur.next >= 0) {
      if (const Merge* nm = merges_.find(cur.id, sym[size_t(cur.next)].id)) {
        heap.push_back({nm->rank, top.pos, nm->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
  }
  for (const Symbol& s : sym)
    if (s.len) out.push_back(s.id);
}

void BpeModel::tokenize(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (cache_->get(piece, out)) return;
  Scratch& sc = scratch();
  std::string_view word = piece;
  if (raw_bytes) {
    sc.mapped.clear();
    byte_level::map_bytes(piece, sc.mapped);
    word = sc.mapped;
  }
  size_t start = out.size();
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      out.push_back(*id);
      cache_->put(piece, &out[start], 1);
      return;
    }
  }
  merge_word(word, out);
  cache_->put(piece, out.data() + start, out.size() - start);
}

}  // namespace mmfp4
