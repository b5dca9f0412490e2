#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/json_read.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace mmfp4 {

namespace {

class ByteLevel final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const override {
    std::string raw;
    for (const std::string& t : tokens) {
      // A token whose characters are all in the byte-level alphabet becomes those bytes; any other token (an
      // added token such as "<｜begin▁of▁sentence｜>") is kept as its UTF-8.
      size_t mark = raw.size();
      bool all = true;
      size_t i = 0;
      while (i < t.size()) {
        int b = byte_level::byte_of(utf8::next(t, i));
        if (b < 0) {
          all = false;
          break;
        }
        raw += char(b);
      }
      if (!all) {
        raw.resize(mark);
        raw += t;
      }
    }
    if (!st.at_end && !utf8::ends_on_boundary(raw)) st.safe = false;
    tokens.assign(1, utf8::lossy(raw));
    st.collapsed = true;
  }
  bool joins_tokens() const override { return true; }
};

class Metaspace final : public Decoder {
 public:
  Metaspace(uint32_t rep, bool prepend) : rep_(rep), prepend_(prepend) {}
  void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      // HF drops every replacement character of the first token (not only a leading one) unless the scheme is
      // "never". After a joining step the window's text is part of the one, first token.
      bool first = st.collapsed || (i == 0 && st.at_start);
      std::string out;
      const std::string& t = tokens[i];
      size_t k = 0;
      while (k < t.size()) {
        size_t b = k;
        uint32_t cp = utf8::next(t, k);
        if (cp == rep_) {
          if (!(first && prepend_)) out += ' ';
        } else {
          out.append(t, b, k - b);
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  uint32_t rep_;
  bool prepend_;
};

// "<0xAB>" -> 0xAB, as HF parses it (u8::from_str_radix of the two middle bytes, which accepts "+F").
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') return hex(t[4]);
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class ByteFallback final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      // A run of byte tokens that is not valid UTF-8 becomes one U+FFFD per byte (not per ill-formed subpart).
      if (utf8::is_valid(bytes)) out.push_back(bytes);
      else
        for (size_t k = 0; k < bytes.size(); ++k) out.emplace_back(utf8::kReplacement);
      bytes.clear();
    };
    bool last_was_byte = false;
    for (std::string& t : tokens) {
      int b = byte_token(t);
      last_was_byte = b >= 0;
      if (b >= 0) {
        bytes += char(b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    // A run of byte tokens may continue in the next window, and its validity is judged as a whole.
    if (!st.at_end && last_was_byte) st.safe = false;
    tokens = std::move(out);
  }
  bool needs_token_boundaries() const override { return true; }
};

class Fuse final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
    st.collapsed = true;
  }
  bool joins_tokens() const override { return true; }
};

class Strip final : public Decoder {
 public:
  Strip(uint32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const override {
    for (std::string& t : tokens) {
      // After a joining step the token is the window's part of the whole text: its start is the text start only
      // in the first window, its end the text end only in the last.
      bool strip_start = !st.collapsed || st.at_start;
      bool strip_end = !st.collapsed || st.at_end;
      std::vector<std::pair<size_t, uint32_t>> chars;  // (byte offset, code point)
      size_t i = 0;
      while (i < t.size()) {
        size_t b = i;
        chars.emplace_back(b, utf8::next(t, i));
      }
      size_t cut_b = 0, cut_e = chars.size();
      if (strip_start)
        for (size_t k = 0; k < start_ && k < chars.size() && chars[k].second == content_; ++k) cut_b = k + 1;
      if (strip_end) {
        for (size_t k = 0; k < stop_ && k < chars.size(); ++k) {
          size_t idx = chars.size() - k - 1;
          if (chars[idx].second != content_) break;
          cut_e = idx;
        }
      } else if (stop_ > 0 && !chars.empty() && chars.back().second == content_) {
        st.safe = false;  // these may be the text's last characters, which the full decode strips
      }
      if (cut_e < cut_b) cut_e = cut_b;
      size_t bb = cut_b < chars.size() ? chars[cut_b].first : t.size();
      size_t be = cut_e < chars.size() ? chars[cut_e].first : t.size();
      t = t.substr(bb, be - bb);
    }
  }

 private:
  uint32_t content_;
  size_t start_, stop_;
};

class Replace final : public Decoder {
 public:
  Replace(Regex re, std::string content, bool single_char_literal)
      : re_(std::move(re)), content_(std::move(content)), single_char_(single_char_literal) {}
  void decode_chain(std::vector<std::string>& tokens, DecodeState&) const override {
    std::vector<Span> m;
    for (std::string& t : tokens) {
      m.clear();
      re_.find_all(t, m);
      if (m.empty()) continue;
      std::string out;
      size_t last = 0;
      for (const Span& s : m) {
        out.append(t, last, s.begin - last);
        out += content_;
        last = s.end;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }
  // A match longer than one character could straddle two windows once the tokens are joined.
  bool needs_token_boundaries() const override { return !single_char_; }

 private:
  Regex re_;
  std::string content_;
  bool single_char_;
};

class BpeSuffix final : public Decoder {
 public:
  explicit BpeSuffix(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      bool last = st.collapsed || (i + 1 == tokens.size() && st.at_end);
      bool window_last = i + 1 == tokens.size() && !st.at_end && !st.collapsed;
      if (suffix_.empty()) continue;
      std::string out;
      size_t pos = 0, f;
      bool found = false;
      while ((f = t.find(suffix_, pos)) != std::string::npos) {
        out.append(t, pos, f - pos);
        out += last ? "" : " ";
        pos = f + suffix_.size();
        found = true;
      }
      out.append(t, pos, std::string::npos);
      if (found && window_last) st.safe = false;  // the suffix becomes "" if this token turns out to be the last
      t = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const override {
    for (const auto& d : parts_) d->decode_chain(tokens, st);
  }
  bool needs_token_boundaries() const override {
    for (const auto& d : parts_)
      if (d->needs_token_boundaries()) return true;
    return false;
  }
  bool joins_tokens() const override {
    for (const auto& d : parts_)
      if (d->joins_tokens()) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json::Value& v, const std::string& what) {
  if (v.is_null()) return nullptr;
  const std::string& type = jr::type(v, what);
  std::string w = cat(what, " (", type, ")");
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Metaspace") {
    std::string scheme = jr::str_or(v, "prepend_scheme", "always", w);
    bool prepend = scheme != "never";
    if (const json::Value* aps = v.find("add_prefix_space"); aps && aps->is_bool() && !aps->as_bool()) prepend = false;
    return std::make_unique<Metaspace>(jr::one_char(v, "replacement", w), prepend);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    int64_t start = jr::integer_or(v, "start", 0, w), stop = jr::integer_or(v, "stop", 0, w);
    if (start < 0 || stop < 0) fail(w, ": start and stop must not be negative");
    return std::make_unique<Strip>(jr::one_char(v, "content", w), size_t(start), size_t(stop));
  }
  if (type == "Replace") {
    const json::Value& pat = jr::field(v, "pattern", w);
    const json::Value* lit = pat.find("String");
    bool single = lit && lit->is_string() && utf8::is_valid(lit->as_string()) && utf8::count_chars(lit->as_string()) == 1;
    return std::make_unique<Replace>(make_pattern(pat, w), jr::str(v, "content", w), single);
  }
  if (type == "BPEDecoder") return std::make_unique<BpeSuffix>(jr::str_or(v, "suffix", "</w>", w));
  if (type == "Sequence") {
    auto parts = jr::component_list(v, "decoders", what, w, make_decoder);
    bool joined = false;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (joined && parts[i]->needs_token_boundaries())
        fail(what, ".decoders[", i, "]: this decoder after a step that joins all tokens (Fuse, ByteLevel) is not supported");
      joined |= parts[i]->joins_tokens();
    }
    return std::make_unique<Sequence>(std::move(parts));
  }
  fail(what, ": decoder type \"", type, "\" is not supported (supported: ByteLevel, Metaspace, ByteFallback, Fuse, ",
       "Strip, Replace, BPEDecoder, Sequence)");
}

std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens, DecodeState& st) {
  st.collapsed = false;
  std::string out;
  if (!decoder) {
    // HF joins the tokens with spaces when there is no decoder.
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0 || !st.at_start) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder->decode_chain(tokens, st);
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace mmfp4
