#include "tokenizer/jinja/lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja {

namespace {

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
bool is_dec(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  Lexer(std::string_view src, const std::string& name, const LexOptions& opt) : name_(name), opt_(opt) {
    size_t bad = utf8::find_invalid(src);
    if (bad != std::string_view::npos) {
      src_ = std::string(src.substr(0, bad));  // so that the position is computed on valid text
      build_lines();
      fail_at(bad, "template is not valid UTF-8");
    }
    // Jinja splits on \r\n, \r and \n and rejoins with \n, then drops one trailing newline.
    src_.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\r') {
        src_ += '\n';
        if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
      } else {
        src_ += src[i];
      }
    }
    if (!opt_.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.pop_back();
    build_lines();
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    const size_t n = src_.size();
    while (pos < n) {
      size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        push_text(pos, src_.substr(pos));
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      size_t after = tag + 2;
      char sign = after < n && (src_[after] == '-' || src_[after] == '+') ? src_[after] : 0;
      if (sign) ++after;
      std::string text = src_.substr(pos, tag - pos);
      bool raw = kind == '%' && is_raw_begin(after);
      apply_lstrip(text, sign, kind != '{', line_starting);
      push_text(pos, std::move(text));

      if (kind == '#') {
        pos = lex_comment(tag, after, line_starting);
      } else if (raw) {
        pos = lex_raw(tag, after, line_starting);
      } else {
        pos = lex_tag(tag, after, kind == '%', line_starting);
      }
    }
    Token eof;
    eof.type = Tok::Eof;
    eof.loc = loc_at(n);
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail_at(size_t offset, const std::string& msg) const {
    Loc l = loc_at(offset);
    throw TemplateError(TemplateError::Kind::Syntax, name_, l.line, l.col, msg);
  }

  void build_lines() {
    line_starts_.assign(1, 0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  // Line and column (in code points) of a byte offset. Tokens arrive in increasing order, so the column count
  // continues from the previous call on the same line instead of rescanning it (a long one-line template would
  // otherwise cost quadratic time).
  Loc loc_at(size_t offset) const {
    offset = std::min(offset, src_.size());
    size_t lo = 0, hi = line_starts_.size();
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (line_starts_[mid] <= offset) lo = mid; else hi = mid;
    }
    size_t start = line_starts_[lo];
    if (cache_line_ != lo || cache_offset_ > offset) {
      cache_line_ = lo;
      cache_offset_ = start;
      cache_col_ = 1;
    }
    cache_col_ += utf8::length(std::string_view(src_).substr(cache_offset_, offset - cache_offset_));
    cache_offset_ = offset;
    return Loc{uint32_t(lo + 1), uint32_t(cache_col_)};
  }

  size_t find_tag(size_t pos) const {
    for (size_t i = src_.find('{', pos); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  size_t skip_space(size_t i) const {
    while (i < src_.size()) {
      size_t j = i;
      if (!utf8::is_space(utf8::next(src_, j))) break;
      i = j;
    }
    return i;
  }

  bool starts(size_t i, std::string_view s) const { return src_.compare(i, s.size(), s) == 0; }

  // {%[-+]? \s* raw \s* (-%} | %})
  bool is_raw_begin(size_t after) const {
    size_t i = skip_space(after);
    if (!starts(i, "raw") || (i + 3 < src_.size() && is_ident_char(src_[i + 3]))) return false;
    i = skip_space(i + 3);
    return starts(i, "-%}") || starts(i, "%}");
  }

  // lstrip_blocks: a block or comment tag alone on its line takes the indentation before it with it.
  void apply_lstrip(std::string& text, char sign, bool block_like, bool line_starting) const {
    if (sign == '-') {
      text = std::string(utf8::strip(text, nullptr, false, true));
      return;
    }
    if (sign == '+' || !opt_.lstrip_blocks || !block_like) return;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting) return;
    if (l_pos == text.size()) return;
    if (utf8::strip(std::string_view(text).substr(l_pos), nullptr, true, true).empty()) text.resize(l_pos);
  }

  void push_text(size_t pos, std::string text) {
    if (text.empty()) return;
    Token t;
    t.type = Tok::Text;
    t.text = std::move(text);
    t.loc = loc_at(pos);
    tokens_.push_back(std::move(t));
  }

  // After an end marker: '-' eats all following whitespace, '+' nothing, plain eats one newline (trim_blocks,
  // for blocks and comments only). Returns the new position and whether the consumed text ended a line.
  size_t after_end(size_t pos, char sign, bool trim, bool& line_starting) const {
    size_t start = pos;
    if (sign == '-') {
      pos = skip_space(pos);
    } else if (sign != '+' && trim && opt_.trim_blocks && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    line_starting = pos > start && src_[pos - 1] == '\n';
    return pos;
  }

  size_t lex_comment(size_t tag, size_t after, bool& line_starting) {
    // Jinja's quirk: a comment opener as the very last characters is dropped without complaint.
    if (after == src_.size()) return after;
    size_t end = src_.find("#}", after);
    if (end == std::string::npos) fail_at(tag, "missing end of comment tag '#}'");
    char sign = 0;
    if (end > after && (src_[end - 1] == '-' || src_[end - 1] == '+')) sign = src_[end - 1];
    return after_end(end + 2, sign, true, line_starting);
  }

  size_t lex_raw(size_t tag, size_t after, bool& line_starting) {
    // Position after the raw begin tag.
    size_t i = skip_space(skip_space(after) + 3);
    size_t pos;
    if (starts(i, "-%}")) {
      pos = skip_space(i + 3);
    } else {
      pos = i + 2;
    }
    line_starting = pos > 0 && src_[pos - 1] == '\n';
    if (pos >= src_.size()) return pos;  // like Jinja, a raw block opened at the very end is empty
    // Find {%[-+]? \s* endraw \s* [-+]?%}
    for (size_t j = src_.find("{%", pos); j != std::string::npos; j = src_.find("{%", j + 1)) {
      size_t k = j + 2;
      char sign = k < src_.size() && (src_[k] == '-' || src_[k] == '+') ? src_[k] : 0;
      if (sign) ++k;
      k = skip_space(k);
      if (!starts(k, "endraw")) continue;
      k = skip_space(k + 6);
      char end_sign = 0;
      if (k < src_.size() && (src_[k] == '-' || src_[k] == '+')) end_sign = src_[k++];
      if (!starts(k, "%}")) continue;
      std::string text = src_.substr(pos, j - pos);
      apply_lstrip(text, sign, true, line_starting);
      push_text(pos, std::move(text));
      return after_end(k + 2, end_sign, true, line_starting);
    }
    fail_at(tag, "missing end of raw block '{% endraw %}'");
  }

  size_t lex_tag(size_t tag, size_t after, bool block, bool& line_starting) {
    Token begin;
    begin.type = block ? Tok::BlockBegin : Tok::VarBegin;
    begin.loc = loc_at(tag);
    tokens_.push_back(begin);
    std::vector<std::pair<char, size_t>> balance;  // expected closer, position of the opener
    size_t pos = after;
    const char* close = block ? "%}" : "}}";
    while (true) {
      pos = skip_space(pos);
      if (pos >= src_.size()) fail_at(tag, block ? "unclosed block tag: expected '%}'" : "unclosed '{{': expected '}}'");
      if (balance.empty()) {
        char sign = 0;
        size_t e = pos;
        if (src_[e] == '-' || (block && src_[e] == '+')) sign = src_[e++];
        if (starts(e, close)) {
          Token end;
          end.type = block ? Tok::BlockEnd : Tok::VarEnd;
          end.loc = loc_at(pos);
          tokens_.push_back(end);
          return after_end(e + 2, sign, block, line_starting);
        }
      }
      pos = lex_token(pos, balance);
    }
  }

  size_t lex_token(size_t pos, std::vector<std::pair<char, size_t>>& balance) {
    Token t;
    t.loc = loc_at(pos);
    char c = src_[pos];
    if (is_dec(c)) return lex_number(pos, std::move(t));
    if (is_ident_start(c)) {
      size_t e = pos;
      while (e < src_.size() && is_ident_char(src_[e])) ++e;
      t.type = Tok::Name;
      t.text = src_.substr(pos, e - pos);
      tokens_.push_back(std::move(t));
      return e;
    }
    if (c == '\'' || c == '"') return lex_string(pos, std::move(t));
    static const char* const ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                      "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
    for (const char* op : ops) {
      if (!starts(pos, op)) continue;
      std::string s(op);
      if (s == "(" || s == "[" || s == "{") {
        balance.push_back({s == "(" ? ')' : s == "[" ? ']' : '}', pos});
      } else if (s == ")" || s == "]" || s == "}") {
        if (balance.empty()) fail_at(pos, "unexpected '" + s + "'");
        if (balance.back().first != s[0])
          fail_at(pos, cat("unexpected '", s, "', expected '", balance.back().first, "'"));
        balance.pop_back();
      }
      size_t len = s.size();
      t.type = Tok::Op;
      t.text = std::move(s);
      tokens_.push_back(std::move(t));
      return pos + len;
    }
    size_t j = pos;
    uint32_t cp = utf8::next(src_, j);
    std::string ch;
    utf8::append(ch, cp);
    fail_at(pos, "unexpected character '" + ch + "'");
  }

  // Digits with optional single underscores between them, as Jinja's number regexes allow.
  size_t digits(size_t i, bool (*ok)(char)) const {
    size_t start = i;
    while (i < src_.size()) {
      if (ok(src_[i])) {
        ++i;
      } else if (src_[i] == '_' && i > start && i + 1 < src_.size() && ok(src_[i + 1])) {
        ++i;
      } else {
        break;
      }
    }
    return i;
  }

  size_t lex_number(size_t pos, Token t) {
    auto clean = [&](size_t a, size_t b) {
      std::string s;
      for (size_t i = a; i < b; ++i)
        if (src_[i] != '_') s += src_[i];
      return s;
    };
    char p1 = pos + 1 < src_.size() ? char(src_[pos + 1] | 0x20) : 0;
    if (src_[pos] == '0' && (p1 == 'x' || p1 == 'o' || p1 == 'b')) {
      int base = p1 == 'x' ? 16 : p1 == 'o' ? 8 : 2;
      size_t i = pos + 2;
      if (i < src_.size() && src_[i] == '_') ++i;
      auto ok = base == 16 ? +[](char c) { return is_dec(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
                : base == 8 ? +[](char c) { return c >= '0' && c <= '7'; }
                            : +[](char c) { return c == '0' || c == '1'; };
      size_t e = digits(i, ok);
      if (e == i) fail_at(pos, "invalid number literal");
      std::string d = clean(i, e);
      errno = 0;
      unsigned long long v = std::strtoull(d.c_str(), nullptr, base);
      if (errno == ERANGE || v > uint64_t(INT64_MAX)) fail_at(pos, "integer literal too large");
      t.type = Tok::Int;
      t.ival = int64_t(v);
      tokens_.push_back(std::move(t));
      return e;
    }
    size_t e = digits(pos, is_dec);
    bool is_float = false;
    size_t f = e;
    // Jinja's float pattern may not follow a '.', so matrix.0.1 is matrix[0][1], not matrix[0.1].
    const bool after_dot = pos > 0 && src_[pos - 1] == '.';
    if (after_dot) {
      // integer only
    } else if (f + 1 < src_.size() && src_[f] == '.' && is_dec(src_[f + 1])) {
      f = digits(f + 1, is_dec);
      is_float = true;
    }
    if (!after_dot && f < src_.size() && (src_[f] | 0x20) == 'e') {
      size_t g = f + 1;
      if (g < src_.size() && (src_[g] == '+' || src_[g] == '-')) ++g;
      if (g < src_.size() && is_dec(src_[g])) {
        f = digits(g, is_dec);
        is_float = true;
      }
    }
    if (is_float) {
      std::string d = clean(pos, f);
      t.type = Tok::Float;
      t.fval = std::strtod(d.c_str(), nullptr);
      tokens_.push_back(std::move(t));
      return f;
    }
    std::string d = clean(pos, e);
    errno = 0;
    unsigned long long v = std::strtoull(d.c_str(), nullptr, 10);
    if (errno == ERANGE || v > uint64_t(INT64_MAX)) fail_at(pos, "integer literal too large");
    t.type = Tok::Int;
    t.ival = int64_t(v);
    tokens_.push_back(std::move(t));
    return e;
  }

  static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = char(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }

  // Python string literal escapes (Jinja decodes literals with "unicode-escape"); unknown escapes stay as written.
  size_t lex_string(size_t pos, Token t) {
    char q = src_[pos];
    std::string out;
    size_t i = pos + 1;
    while (true) {
      if (i >= src_.size()) fail_at(pos, "unterminated string literal");
      char c = src_[i];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) fail_at(pos, "unterminated string literal");
      char e = src_[i + 1];
      size_t esc = i;
      i += 2;
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int k = 0; k < nd; ++k) {
            int h = i < src_.size() ? hexval(src_[i]) : -1;
            if (h < 0) fail_at(esc, cat("truncated \\", e, " escape in string literal"));
            cp = cp * 16 + uint32_t(h);
            ++i;
          }
          if (cp > 0x10FFFF) fail_at(esc, "illegal Unicode character in string literal");
          if (cp >= 0xD800 && cp <= 0xDFFF) fail_at(esc, "surrogate escapes are not supported in string literals");
          utf8::append(out, cp);
          break;
        }
        case 'N': fail_at(esc, "named Unicode escapes (\\N{...}) are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = uint32_t(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i)
              cp = cp * 8 + uint32_t(src_[i] - '0');
            utf8::append(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    t.type = Tok::String;
    t.text = std::move(out);
    tokens_.push_back(std::move(t));
    return i + 1;
  }

  std::string src_;
  const std::string& name_;
  LexOptions opt_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  mutable size_t cache_line_ = 0, cache_offset_ = 0, cache_col_ = 1;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const std::string& name, const LexOptions& opt) {
  return Lexer(source, name, opt).run();
}

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::Text: return "template text";
    case Tok::VarBegin: return "'{{'";
    case Tok::VarEnd: return "'}}'";
    case Tok::BlockBegin: return "'{%'";
    case Tok::BlockEnd: return "'%}'";
    case Tok::Name: return "'" + t.text + "'";
    case Tok::String: return "string literal";
    case Tok::Int:
    case Tok::Float: return "number";
    case Tok::Op: return "'" + t.text + "'";
    case Tok::Eof: return "end of template";
  }
  return "token";
}

}  // namespace mmfp4::jinja
