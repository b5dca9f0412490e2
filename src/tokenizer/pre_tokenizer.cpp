#include "tokenizer/pre_tokenizer.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/json_read.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

namespace mmfp4 {

void materialize_byte_level(Piece& p) {
  if (!p.raw_bytes) return;
  std::string out;
  out.reserve(p.text.size() + p.text.size() / 4);
  byte_level::map_bytes(std::string_view(p.text).substr(0, p.inserted), out);
  uint32_t inserted = uint32_t(out.size());
  byte_level::map_bytes(std::string_view(p.text).substr(p.inserted), out);
  p.text = std::move(out);
  p.inserted = p.inserted ? inserted : 0;
  p.raw_bytes = false;
}

namespace {

// Applies `fn(piece, out)` to every piece that is not an added token; added tokens pass through.
template <typename Fn>
void split_each(std::vector<Piece>& pieces, Fn&& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& p : pieces) {
    if (p.token >= 0) out.push_back(std::move(p));
    else fn(p, out);
  }
  pieces = std::move(out);
}

// The spans of the single characters of `text` for which pred(code point) holds (Hugging Face's char patterns).
template <typename Pred>
void char_matches(std::string_view text, Pred&& pred, std::vector<Span>& m) {
  m.clear();
  size_t i = 0;
  while (i < text.size()) {
    size_t b = i;
    uint32_t cp = utf8::next(text, i);
    if (pred(cp)) m.push_back({uint32_t(b), uint32_t(i)});
  }
}

template <typename Pred>
void split_chars(std::vector<Piece>& pieces, SplitBehavior behavior, Pred pred) {
  std::vector<Span> m;
  split_each(pieces, [&](Piece& p, std::vector<Piece>& out) {
    materialize_byte_level(p);
    char_matches(p.text, pred, m);
    split_piece(p, m, behavior, false, out);
  });
}

class Split final : public PreTokenizer {
 public:
  Split(Regex re, SplitBehavior b, bool invert) : re_(std::move(re)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> m;
    split_each(pieces, [&](Piece& p, std::vector<Piece>& out) {
      materialize_byte_level(p);
      m.clear();
      re_.find_all(p.text, m);
      split_piece(p, m, behavior_, invert_, out);
    });
  }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's pre-tokenizer pattern, as Hugging Face's ByteLevel hard-codes it.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, const std::string& what)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex), re_(kGpt2Pattern, what) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> m;
    split_each(pieces, [&](Piece& p, std::vector<Piece>& out) {
      materialize_byte_level(p);
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) {
        p.text.insert(0, 1, ' ');
        p.inserted += 1;
      }
      size_t first = out.size();
      if (use_regex_) {
        m.clear();
        re_.find_all(p.text, m);
        split_piece(p, m, SplitBehavior::Isolated, false, out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
      // The byte -> character mapping is deferred: the BPE model reads raw bytes (see materialize_byte_level).
      for (size_t k = first; k < out.size(); ++k) out[k].raw_bytes = true;
    });
  }

 private:
  bool add_prefix_space_, use_regex_;
  Regex re_;
};

enum class Prepend { Always, First, Never };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(uint32_t replacement, Prepend scheme, bool split)
      : rep_cp_(replacement), rep_(utf8::encode(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> m;
    split_each(pieces, [&](Piece& p, std::vector<Piece>& out) {
      materialize_byte_level(p);
      std::string t;
      t.reserve(p.text.size() + 8);
      uint32_t inserted = 0;
      for (size_t i = 0; i < p.text.size(); ++i) {
        if (p.text[i] == ' ') t += rep_;
        else t += p.text[i];
        if (i + 1 == p.inserted) inserted = uint32_t(t.size());
      }
      p.text = std::move(t);
      p.inserted = inserted;
      bool starts = p.text.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == Prepend::Always || (scheme_ == Prepend::First && p.at_origin))) {
        p.text.insert(0, rep_);
        p.inserted += uint32_t(rep_.size());
      }
      if (!split_) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return;
      }
      char_matches(p.text, [&](uint32_t cp) { return cp == rep_cp_; }, m);
      split_piece(p, m, SplitBehavior::MergedWithNext, false, out);
    });
  }

 private:
  uint32_t rep_cp_;
  std::string rep_;
  Prepend scheme_;
  bool split_;
};

class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous, unicode::is_numeric);
  }

 private:
  bool individual_;
};

// Hugging Face's Whitespace: the matches of \w+|[^\w\s]+ (Rust regex classes), everything else dropped.
class Whitespace final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> m;
    split_each(pieces, [&](Piece& p, std::vector<Piece>& out) {
      materialize_byte_level(p);
      m.clear();
      const std::string& t = p.text;
      size_t i = 0;
      while (i < t.size()) {
        size_t b = i;
        uint32_t cp = utf8::next(t, i);
        int kind = unicode::is_word(cp) ? 1 : unicode::is_whitespace(cp) ? 0 : 2;
        if (kind == 0) continue;
        size_t e = i;
        while (e < t.size()) {
          size_t j = e;
          uint32_t c2 = utf8::next(t, j);
          int k2 = unicode::is_word(c2) ? 1 : unicode::is_whitespace(c2) ? 0 : 2;
          if (k2 != kind) break;
          e = j;
        }
        m.push_back({uint32_t(b), uint32_t(e)});
        i = e;
      }
      split_piece(p, m, SplitBehavior::Removed, true, out);
    });
  }
};

class WhitespaceSplit final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, SplitBehavior::Removed, unicode::is_whitespace);
  }
};

class Punctuation final : public PreTokenizer {
 public:
  explicit Punctuation(SplitBehavior b) : behavior_(b) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, behavior_, unicode::is_punctuation);
  }

 private:
  SplitBehavior behavior_;
};

class BertPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, SplitBehavior::Removed, unicode::is_whitespace);
    split_chars(pieces, SplitBehavior::Isolated, unicode::is_punctuation);
  }
};

class CharDelimiterSplit final : public PreTokenizer {
 public:
  explicit CharDelimiterSplit(uint32_t d) : d_(d) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, SplitBehavior::Removed, [this](uint32_t cp) { return cp == d_; });
  }

 private:
  uint32_t d_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Value& v, const std::string& what) {
  if (v.is_null()) return nullptr;
  const std::string& type = jr::type(v, what);
  std::string w = cat(what, " (", type, ")");
  if (type == "Split") {
    SplitBehavior b = parse_split_behavior(jr::str(v, "behavior", w), w);
    return std::make_unique<Split>(make_pattern(jr::field(v, "pattern", w), w), b, jr::boolean_or(v, "invert", false, w));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(jr::boolean_or(v, "add_prefix_space", true, w),
                                       jr::boolean_or(v, "use_regex", true, w), w);
  if (type == "Metaspace") {
    Prepend scheme = Prepend::Always;
    std::string s = jr::str_or(v, "prepend_scheme", "always", w);
    if (s == "always") scheme = Prepend::Always;
    else if (s == "first") scheme = Prepend::First;
    else if (s == "never") scheme = Prepend::Never;
    else fail(w, ": unknown prepend_scheme \"", s, "\"");
    // Files written before prepend_scheme existed say add_prefix_space: false for "never".
    if (const json::Value* aps = v.find("add_prefix_space"); aps && aps->is_bool() && !aps->as_bool()) {
      if (v.find("prepend_scheme") && scheme != Prepend::Never)
        fail(w, ": add_prefix_space false contradicts prepend_scheme \"", s, "\"");
      scheme = Prepend::Never;
    }
    return std::make_unique<Metaspace>(jr::one_char(v, "replacement", w), scheme, jr::boolean_or(v, "split", true, w));
  }
  if (type == "Digits") return std::make_unique<Digits>(jr::boolean_or(v, "individual_digits", false, w));
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Punctuation")
    return std::make_unique<Punctuation>(parse_split_behavior(jr::str_or(v, "behavior", "Isolated", w), w));
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "CharDelimiterSplit") return std::make_unique<CharDelimiterSplit>(jr::one_char(v, "delimiter", w));
  if (type == "Sequence")
    return std::make_unique<Sequence>(jr::component_list(v, "pretokenizers", what, w, make_pre_tokenizer));
  fail(what, ": pre-tokenizer type \"", type, "\" is not supported (supported: Split, ByteLevel, Metaspace, Digits, ",
       "Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer, CharDelimiterSplit, Sequence)");
}

}  // namespace mmfp4
