#include "tokenizer/added_vocab.h"

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/bpe.h"
#include "tokenizer/json_read.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

namespace mmfp4 {

void AddedVocab::Trie::add(std::string_view s, int32_t token) {
  int32_t node = 0;
  for (char c : s) {
    uint64_t key = (uint64_t(node) << 8) | uint8_t(c);
    auto it = edges.find(key);
    if (it == edges.end()) {
      int32_t child = int32_t(terminal.size());
      terminal.push_back(-1);
      edges.emplace(key, child);
      node = child;
    } else {
      node = it->second;
    }
  }
  terminal[size_t(node)] = token;
  first[uint8_t(s[0])] = true;
}

void AddedVocab::load(const json::Value& added, const BpeModel& model, const Normalizer* normalizer,
                      const std::string& what) {
  if (added.is_null()) return;
  if (!added.is_array()) fail(what, ": must be an array");
  // Hugging Face numbers added tokens that are not in the model vocabulary from the vocabulary's size upwards;
  // the "id" in the file is only checked (a mismatch is a warning there too).
  int32_t next_id = int32_t(model.vocab_count());
  const json::Array& a = added.as_array();
  for (size_t i = 0; i < a.size(); ++i) {
    std::string w = cat(what, "[", i, "]");
    const json::Value& t = a[i];
    if (!t.is_object()) fail(w, ": must be an object");
    AddedToken tok;
    tok.content = jr::str(t, "content", w);
    if (!utf8::is_valid(tok.content)) fail(w, ": content is not valid UTF-8");
    tok.single_word = jr::boolean_or(t, "single_word", false, w);
    tok.lstrip = jr::boolean_or(t, "lstrip", false, w);
    tok.rstrip = jr::boolean_or(t, "rstrip", false, w);
    tok.special = jr::boolean_or(t, "special", false, w);
    tok.normalized = jr::boolean_or(t, "normalized", !tok.special, w);
    int64_t file_id = jr::integer_or(t, "id", -1, w);
    if (tok.content.empty()) continue;  // ignored, as in HF
    if (auto it = by_content_.find(tok.content); it != by_content_.end()) {
      tok.id = tokens_[size_t(it->second)].id;
    } else if (auto mid = model.token_to_id(tok.content)) {
      tok.id = *mid;
    } else {
      tok.id = next_id++;
    }
    if (file_id >= 0 && file_id != tok.id)
      log_warn(w, ": token \"", tok.content, "\" has id ", file_id, " in the file but gets id ", tok.id,
               " (as in Hugging Face tokenizers)");
    std::string norm = tok.content;
    if (tok.normalized && normalizer) {
      Piece p;
      p.text = tok.content;
      normalizer->normalize(p);
      norm = p.text;
    }
    if (tok.special) special_contents_[tok.content] = true;
    int32_t index = int32_t(tokens_.size());
    // A token registered twice (same content or same id): the later one wins, as in HF.
    by_content_[tok.content] = index;
    by_id_[tok.id] = index;
    max_id_ = std::max(max_id_, tok.id);
    tokens_.push_back(std::move(tok));
    normalized_text_.push_back(std::move(norm));
  }
  for (const auto& [id, index] : by_id_) {
    const AddedToken& t = tokens_[size_t(index)];
    if (t.normalized) {
      if (!normalized_text_[size_t(index)].empty()) normalized_.add(normalized_text_[size_t(index)], index);
    } else {
      raw_.add(t.content, index);
    }
  }
}

const AddedToken* AddedVocab::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[size_t(it->second)];
}

const std::string* AddedVocab::decoded_text(int32_t id) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  const AddedToken& t = tokens_[size_t(it->second)];
  return t.normalized ? &normalized_text_[size_t(it->second)] : &t.content;
}

std::optional<int32_t> AddedVocab::by_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[size_t(it->second)].id;
}

bool AddedVocab::is_special_content(std::string_view content) const {
  return special_contents_.count(std::string(content)) != 0;
}

void AddedVocab::split(std::vector<Piece>& pieces, const Trie& trie) const {
  if (trie.empty()) return;
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& p : pieces) {
    if (p.token >= 0) out.push_back(std::move(p));
    else split_one(p, trie, out);
  }
  pieces = std::move(out);
}

namespace {

// Rust regex \w$ on text[..end] / ^\w on text[begin..].
bool word_before(std::string_view t, size_t end) {
  if (end == 0) return false;
  size_t s = end - 1;
  while (s > 0 && (uint8_t(t[s]) & 0xC0) == 0x80) --s;
  return unicode::is_word(utf8::next(t, s));
}
bool word_after(std::string_view t, size_t begin) {
  if (begin >= t.size()) return false;
  return unicode::is_word(utf8::next(t, begin));
}

// Start of the whitespace run that ends at `end` (Rust regex \s*$ on text[..end]).
size_t space_run_start(std::string_view t, size_t end) {
  while (end > 0) {
    size_t s = end - 1;
    while (s > 0 && (uint8_t(t[s]) & 0xC0) == 0x80) --s;
    size_t j = s;
    if (!unicode::is_whitespace(utf8::next(t, j))) break;
    end = s;
  }
  return end;
}
// End of the whitespace run that starts at `begin` (^\s* on text[begin..]).
size_t space_run_end(std::string_view t, size_t begin) {
  while (begin < t.size()) {
    size_t j = begin;
    if (!unicode::is_whitespace(utf8::next(t, j))) break;
    begin = j;
  }
  return begin;
}

}  // namespace

void AddedVocab::split_one(const Piece& p, const Trie& trie, std::vector<Piece>& out) const {
  const std::string& t = p.text;
  size_t n = t.size();
  size_t start_offset = 0, pos = 0;
  auto push_gap = [&](size_t b, size_t e) {
    if (e > b) out.push_back(sub_piece(p, b, e));
  };
  while (pos < n) {
    // Leftmost-longest: the first position where some token starts, then the longest token there.
    size_t start = pos, stop = 0;
    int32_t index = -1;
    for (; start < n; ++start) {
      if (!trie.first[uint8_t(t[start])]) continue;
      int32_t node = 0;
      for (size_t k = start; k < n; ++k) {
        auto it = trie.edges.find((uint64_t(node) << 8) | uint8_t(t[k]));
        if (it == trie.edges.end()) break;
        node = it->second;
        if (trie.terminal[size_t(node)] >= 0) {
          index = trie.terminal[size_t(node)];
          stop = k + 1;
        }
      }
      if (index >= 0) break;
    }
    if (index < 0) break;
    // The next search starts after this match even when it is discarded or extended by rstrip (as HF's
    // Aho-Corasick iteration does).
    pos = stop;
    const AddedToken& tok = tokens_[size_t(index)];
    if (tok.single_word && (word_before(t, start) || word_after(t, stop))) continue;
    if (tok.lstrip) start = std::max(space_run_start(t, start), start_offset);
    if (tok.rstrip) stop = space_run_end(t, stop);
    if (start_offset < start) push_gap(start_offset, start);
    Piece piece = sub_piece(p, start, stop);
    piece.token = tok.id;
    out.push_back(std::move(piece));
    start_offset = stop;
  }
  if (start_offset < n) push_gap(start_offset, n);
}

}  // namespace mmfp4
