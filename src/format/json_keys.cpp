#include "format/json_keys.h"

#include <algorithm>
#include <unordered_set>

#include "core/json.h"

namespace mmfp4 {

namespace {

// Walks text that is known to be valid JSON; no error handling beyond staying inside the buffer.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool at(char c) {
    ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  void skip(char c) {
    if (at(c)) ++i_;
  }

  // The raw string token, quotes included.
  std::string_view raw_string() {
    size_t b = i_++;
    while (i_ < s_.size() && s_[i_] != '"') i_ += s_[i_] == '\\' ? 2 : 1;
    i_ = std::min(i_ + 1, s_.size());
    return s_.substr(b, i_ - b);
  }

  void skip_value() {
    ws();
    if (i_ >= s_.size()) return;
    if (s_[i_] == '"') {
      raw_string();
      return;
    }
    if (s_[i_] == '{' || s_[i_] == '[') {
      int depth = 0;
      while (i_ < s_.size()) {
        char c = s_[i_];
        if (c == '"') {
          raw_string();
          continue;
        }
        ++i_;
        if (c == '{' || c == '[') ++depth;
        if ((c == '}' || c == ']') && --depth == 0) return;
      }
      return;
    }
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']') ++i_;  // number or literal
  }

  // At '{': scans the object's keys. With `member` empty, returns the first repeated key; otherwise descends into
  // the value of `member` (when it is an object) and reports duplicates there.
  std::optional<std::string> object(std::string_view member) {
    if (!at('{')) return std::nullopt;
    ++i_;
    std::unordered_set<std::string> seen;
    std::optional<std::string> found;
    while (!found && at('"')) {
      std::string key = decode(raw_string());
      skip(':');
      if (member.empty()) {
        if (!seen.insert(key).second) found = key;
        skip_value();
      } else if (key == member && at('{')) {
        found = object({});
      } else {
        skip_value();
      }
      skip(',');
    }
    return found;
  }

 private:
  static std::string decode(std::string_view raw) {
    if (raw.find('\\') == std::string_view::npos) return std::string(raw.substr(1, raw.size() - 2));
    return json::parse(raw, "key").as_string();
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<std::string> find_duplicate_key(std::string_view text, std::string_view member) {
  return Scanner(text).object(member);
}

}  // namespace mmfp4
