// Regular expressions of tokenizer.json (Split pre-tokenizers, Replace normalizers/decoders), run with PCRE2.
//
// Hugging Face compiles these patterns with Oniguruma. PCRE2 (UTF + UCP) agrees on the syntax the real files use
// except for a few escapes whose Unicode meaning differs; translate_pattern() rewrites those so that PCRE2 matches
// the same characters Oniguruma does:
//   \s \S  Oniguruma: the White_Space property. PCRE2 also counts U+180E.
//   \w \W  Oniguruma: letters, marks, numbers and connector punctuation. PCRE2 omits the marks.
//   \h \H  Oniguruma: a hexadecimal digit. PCRE2: horizontal space.
//   \uHHHH Oniguruma's code point escape; PCRE2 spells it \x{HHHH}.
// A negated escape inside a bracket class (e.g. [^\S]) has no PCRE2 spelling and is rejected at load.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;

namespace mmfp4 {

struct Span {
  uint32_t begin, end;  // byte offsets, end exclusive
};

std::string translate_pattern(std::string_view onig_pattern, std::string_view what);

class Regex {
 public:
  // `what` names the pattern's place for errors ("tokenizer.json: pre_tokenizer.pretokenizers[0] (Split)").
  Regex(std::string_view onig_pattern, std::string what);
  // A literal string (a {"String": ...} pattern).
  static Regex literal(std::string_view text, std::string what);
  ~Regex();
  Regex(Regex&& o) noexcept;
  Regex& operator=(Regex&&) = delete;
  Regex(const Regex&) = delete;

  // Appends every match in `text` (valid UTF-8) to `out`, in order, with the semantics of the Rust onig crate's
  // find_iter: an empty match right where the previous match ended is skipped, and the search then resumes one
  // character further. Thread-safe.
  void find_all(std::string_view text, std::vector<Span>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  void compile(const std::string& pcre_pattern);
  std::string pattern_, what_;
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  bool literal_ = false;  // a non-empty literal: matched with a plain substring search
};

}  // namespace mmfp4
