#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <cctype>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace mmfp4 {

namespace {

// Oniguruma's \s: the White_Space property (PCRE2's \s adds U+180E).
constexpr std::string_view kSpaceItems = "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
constexpr std::string_view kHexItems = "0-9a-fA-F";

// Oniguruma knows a newer Unicode than PCRE2: the characters each general category gained since PCRE2's version.
struct CategoryDelta {
  const char* category;
  const char* items;
};
constexpr CategoryDelta kDeltas[] = {
#include "tokenizer/unicode_delta.inc"
};

// The class items of \p{cat} as Oniguruma reads it: PCRE2's property plus the newer characters.
std::string category_items(std::string_view cat) {
  std::string out = "\\p{";
  out += cat;
  out += '}';
  for (const CategoryDelta& d : kDeltas)
    if (cat == d.category) out += d.items;
  return out;
}

bool known_category(std::string_view cat) {
  for (const CategoryDelta& d : kDeltas)
    if (cat == d.category) return true;
  return false;
}

std::string pcre_error(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: match data with room for the whole-match pair and a JIT stack larger than the 32 KiB
// default, so long whitespace runs (\s+(?!\S) backtracks over them) don't hit the JIT stack limit.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
  MatchState() {
    if (!data || !ctx || !stack) fail("tokenizer: out of memory for PCRE2 match state");
    pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(ctx);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState s;
  return s;
}

}  // namespace

std::string translate_pattern(std::string_view p, std::string_view what) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  size_t class_start = 0;  // index in p just after '[' or '[^'
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) fail(what, ": regex ends with a lone backslash: ", p);
      char e = p[i + 1];
      auto replace = [&](std::string_view items, bool negated) {
        if (in_class) {
          if (negated)
            fail(what, ": regex \\", e, " inside a bracket class is not supported (Oniguruma and PCRE2 differ): ", p);
          out += items;
        } else {
          out += negated ? "[^" : "[";
          out += items;
          out += ']';
        }
        ++i;
      };
      static const std::string word_items =
          category_items("L") + category_items("M") + category_items("N") + category_items("Pc");
      static const std::string digit_items = category_items("Nd");
      switch (e) {
        case 's': replace(kSpaceItems, false); continue;
        case 'S': replace(kSpaceItems, true); continue;
        case 'w': replace(word_items, false); continue;
        case 'W': replace(word_items, true); continue;
        case 'd': replace(digit_items, false); continue;
        case 'D': replace(digit_items, true); continue;
        case 'h': replace(kHexItems, false); continue;
        case 'H': replace(kHexItems, true); continue;
        case 'u': {
          size_t k = i + 2;
          while (k < p.size() && k < i + 6 && std::isxdigit(static_cast<unsigned char>(p[k]))) ++k;
          if (k != i + 6) fail(what, ": regex \\u needs four hex digits: ", p);
          out += "\\x{";
          out += p.substr(i + 2, 4);
          out += '}';
          i += 5;
          continue;
        }
        case 'p':
        case 'P': {
          // \pL or \p{L}: a general category gets the characters Oniguruma's newer Unicode adds to it; other
          // properties (scripts, ...) are left to PCRE2.
          std::string_view cat;
          size_t len;  // bytes of the escape after the backslash
          if (i + 2 < p.size() && p[i + 2] == '{') {
            size_t close = p.find('}', i + 3);
            if (close == std::string_view::npos) fail(what, ": unterminated \\p{ in regex: ", p);
            cat = p.substr(i + 3, close - i - 3);
            len = close - i;
          } else {
            cat = p.substr(i + 2, 1);
            len = 2;
          }
          if (!known_category(cat)) break;
          std::string items = category_items(cat);
          replace(items, e == 'P');
          i += len - 1;
          continue;
        }
        default: break;
      }
      // Any other escape is copied whole (with its multi-byte character, if any).
      out += c;
      size_t n = utf8::seq_len(uint8_t(e));
      out += p.substr(i + 1, n);
      i += n;
      continue;
    }
    if (in_class) {
      // ']' right after '[' or '[^' is a literal; a nested '[' is Oniguruma's set syntax unless it opens a POSIX
      // class such as [:alpha:].
      if (c == ']' && i != class_start) in_class = false;
      else if (c == '[' && !(i + 1 < p.size() && p[i + 1] == ':'))
        fail(what, ": nested bracket classes (Oniguruma set operations) are not supported: ", p);
      else if (c == '&' && i + 1 < p.size() && p[i + 1] == '&')
        fail(what, ": bracket class intersection (&&) is not supported: ", p);
      else if (c == '[') {
        size_t close = p.find(":]", i + 2);
        if (close == std::string_view::npos) fail(what, ": unterminated POSIX class in regex: ", p);
        out += p.substr(i, close + 2 - i);
        i = close + 1;
        continue;
      }
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out += c;
      class_start = i + 1;
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
        class_start = i + 1;
      }
      continue;
    }
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view onig_pattern, std::string what) : pattern_(onig_pattern), what_(std::move(what)) {
  compile(translate_pattern(onig_pattern, what_));
}

Regex Regex::literal(std::string_view text, std::string what) {
  Regex r;
  r.pattern_ = std::string(text);
  r.what_ = std::move(what);
  // \Q...\E quotes everything except a literal "\E", which is spelled out separately.
  std::string quoted = "\\Q";
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "\\E") == 0) {
      quoted += "\\E\\\\E\\Q";
      ++i;
    } else {
      quoted += text[i];
    }
  }
  quoted += "\\E";
  r.compile(quoted);
  r.literal_ = !text.empty();
  return r;
}

void Regex::compile(const std::string& pcre_pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre_pattern.data()), pcre_pattern.size(),
                        PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!code_) fail(what_, ": regex does not compile (", pcre_error(err), " at offset ", off, "): ", pattern_);
  // JIT is several times faster; without it (a platform PCRE2 lacks it) the interpreter gives the same matches.
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(code_);
}

Regex::Regex(Regex&& o) noexcept
    : pattern_(std::move(o.pattern_)), what_(std::move(o.what_)), code_(o.code_), jit_(o.jit_), literal_(o.literal_) {
  o.code_ = nullptr;
}

void Regex::find_all(std::string_view text, std::vector<Span>& out) const {
  if (literal_) {
    // Leftmost non-overlapping occurrences: what the regex of the escaped literal finds, without PCRE2.
    for (size_t at = text.find(pattern_); at != std::string_view::npos; at = text.find(pattern_, at + pattern_.size()))
      out.push_back({uint32_t(at), uint32_t(at + pattern_.size())});
    return;
  }
  MatchState& ms = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t n = text.size();
  size_t last_end = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (last_end <= n) {
    // The text was validated as UTF-8 once by the caller, so each call skips PCRE2's own check.
    int rc = jit_ ? pcre2_jit_match(code_, subject, n, last_end, PCRE2_NO_UTF_CHECK, ms.data, ms.ctx)
                  : pcre2_match(code_, subject, n, last_end, PCRE2_NO_UTF_CHECK, ms.data, ms.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail(what_, ": regex match failed (", pcre_error(rc), "): ", pattern_);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ms.data);
    size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_match_end == e) {
      last_end += last_end < n ? utf8::seq_len(uint8_t(text[last_end])) : 1;
      continue;
    }
    last_end = e;
    have_last = true;
    last_match_end = e;
    out.push_back({uint32_t(s), uint32_t(e)});
  }
}

}  // namespace mmfp4
