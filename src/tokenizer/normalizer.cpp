#include "tokenizer/normalizer.h"

#include <vector>

#include "tokenizer/json_read.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

namespace mmfp4 {

namespace jr {
uint32_t one_char(const json::Value& obj, const char* key, const std::string& what) {
  const std::string& s = str(obj, key, what);
  size_t i = 0;
  if (s.empty() || !utf8::is_valid(s)) fail(what, ": field \"", key, "\" must be one character");
  uint32_t cp = utf8::next(s, i);
  if (i != s.size()) fail(what, ": field \"", key, "\" must be one character, not \"", s, "\"");
  return cp;
}
}  // namespace jr

namespace {

// Rewrites p.text one code point at a time; `map` appends the replacement of one code point. The prepended
// prefix (p.inserted) is tracked through the rewrite.
template <typename Map>
void map_chars(Piece& p, Map&& map) {
  std::string out;
  out.reserve(p.text.size());
  uint32_t new_inserted = 0;
  size_t i = 0;
  while (i < p.text.size()) {
    if (i == p.inserted) new_inserted = uint32_t(out.size());
    uint32_t cp = utf8::next(p.text, i);
    map(cp, out);
  }
  if (p.inserted >= p.text.size()) new_inserted = uint32_t(out.size());
  p.text = std::move(out);
  p.inserted = p.inserted ? new_inserted : 0;
}

class Unicode final : public Normalizer {
 public:
  explicit Unicode(unicode::NormForm f) : form_(f) {}
  void normalize(Piece& p) const override {
    p.text = unicode::normalize(p.text, form_);
    if (p.inserted > p.text.size()) p.inserted = uint32_t(p.text.size());
  }

 private:
  unicode::NormForm form_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(Piece& p) const override {
    bool ascii = true;
    for (char c : p.text) ascii &= uint8_t(c) < 0x80;
    if (ascii) {
      for (char& c : p.text)
        if (c >= 'A' && c <= 'Z') c = char(c + 32);
      return;
    }
    map_chars(p, [](uint32_t cp, std::string& out) { out += unicode::lowercase(utf8::encode(cp)); });
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(Piece& p) const override {
    const std::string& t = p.text;
    size_t b = 0, e = t.size();
    if (left_) {
      size_t i = 0;
      while (i < t.size()) {
        size_t j = i;
        if (!unicode::is_whitespace(utf8::next(t, j))) break;
        i = j;
      }
      b = i;
    }
    if (right_) {
      while (e > b) {
        size_t s = e - 1;
        while (s > b && (uint8_t(t[s]) & 0xC0) == 0x80) --s;
        size_t j = s;
        if (!unicode::is_whitespace(utf8::next(t, j))) break;
        e = s;
      }
    }
    if (b == 0 && e == t.size()) return;
    p.inserted = p.inserted > b ? uint32_t(std::min<size_t>(p.inserted - b, e - b)) : 0;
    p.text = t.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  void normalize(Piece& p) const override {
    map_chars(p, [](uint32_t cp, std::string& out) {
      if (!unicode::is_combining_mark(cp)) utf8::append(out, cp);
    });
  }
};

// SentencePiece's NMT normalization: drop control characters, map other spaces to ' '.
class Nmt final : public Normalizer {
 public:
  void normalize(Piece& p) const override {
    map_chars(p, [](uint32_t c, std::string& out) {
      if ((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F)
        return;
      bool space = c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 || (c >= 0x200B && c <= 0x200F) ||
                   c == 0x2028 || c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD;
      utf8::append(out, space ? ' ' : c);
    });
  }
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string s) : s_(std::move(s)) {}
  void normalize(Piece& p) const override {
    if (p.text.empty()) return;  // Hugging Face prepends to non-empty text only
    p.text.insert(0, s_);
    p.inserted += uint32_t(s_.size());
  }

 private:
  std::string s_;
};

class Replace final : public Normalizer {
 public:
  Replace(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  void normalize(Piece& p) const override {
    std::vector<Span> m;
    re_.find_all(p.text, m);
    if (m.empty()) return;
    std::string out;
    out.reserve(p.text.size());
    size_t last = 0;
    uint32_t new_inserted = p.inserted;
    bool inserted_set = p.inserted == 0;
    for (const Span& s : m) {
      if (!inserted_set && s.begin >= p.inserted) {
        new_inserted = uint32_t(out.size() + (p.inserted - last));
        inserted_set = true;
      }
      out.append(p.text, last, s.begin - last);
      out += content_;
      last = s.end;
      if (!inserted_set && last >= p.inserted) {
        new_inserted = uint32_t(out.size());
        inserted_set = true;
      }
    }
    if (!inserted_set) new_inserted = uint32_t(out.size() + (p.inserted - last));
    out.append(p.text, last, std::string::npos);
    p.text = std::move(out);
    p.inserted = new_inserted;
  }

 private:
  Regex re_;
  std::string content_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(Piece& p) const override {
    for (const auto& n : parts_) n->normalize(p);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

// A Replace pattern, {"String": s} or {"Regex": r}: shared with the Replace decoder.
Regex make_pattern(const json::Value& pattern, const std::string& what) {
  if (!pattern.is_object()) fail(what, ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
  if (const json::Value* s = pattern.find("String")) {
    if (!s->is_string()) fail(what, ": pattern String must be a string");
    return Regex::literal(s->as_string(), what);
  }
  if (const json::Value* r = pattern.find("Regex")) {
    if (!r->is_string()) fail(what, ": pattern Regex must be a string");
    return Regex(r->as_string(), what);
  }
  fail(what, ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
}

std::unique_ptr<Normalizer> make_normalizer(const json::Value& v, const std::string& what) {
  if (v.is_null()) return nullptr;
  const std::string& type = jr::type(v, what);
  std::string w = cat(what, " (", type, ")");
  if (type == "NFC") return std::make_unique<Unicode>(unicode::NormForm::NFC);
  if (type == "NFD") return std::make_unique<Unicode>(unicode::NormForm::NFD);
  if (type == "NFKC") return std::make_unique<Unicode>(unicode::NormForm::NFKC);
  if (type == "NFKD") return std::make_unique<Unicode>(unicode::NormForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip")
    return std::make_unique<Strip>(jr::boolean_or(v, "strip_left", false, w), jr::boolean_or(v, "strip_right", false, w));
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Nmt") return std::make_unique<Nmt>();
  if (type == "Prepend") return std::make_unique<Prepend>(jr::str(v, "prepend", w));
  if (type == "Replace") return std::make_unique<Replace>(make_pattern(jr::field(v, "pattern", w), w), jr::str(v, "content", w));
  if (type == "Sequence") return std::make_unique<Sequence>(jr::component_list(v, "normalizers", what, w, make_normalizer));
  fail(what, ": normalizer type \"", type, "\" is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, ",
       "StripAccents, Prepend, Replace, Nmt, Sequence)");
}

}  // namespace mmfp4
