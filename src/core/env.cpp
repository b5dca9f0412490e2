#include "core/env.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace mmfp4 {

namespace {

const char* given(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

std::string lower(const char* v) {
  std::string s(v);
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::optional<bool> env_bool(const char* name) {
  const char* v = given(name);
  if (!v) return std::nullopt;
  const std::string s = lower(v);
  if (s == "1" || s == "true" || s == "on" || s == "yes") return true;
  if (s == "0" || s == "false" || s == "off" || s == "no") return false;
  fail("environment variable ", name, "='", v, "': expected 0 or 1 (or false/true, off/on, no/yes)");
}

std::optional<int64_t> env_int(const char* name, int64_t lo, int64_t hi) {
  const char* v = given(name);
  if (!v) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || errno == ERANGE || n < lo || n > hi)
    fail("environment variable ", name, "='", v, "': expected an integer in ", lo, "..", hi);
  return int64_t(n);
}

std::optional<std::string> env_choice(const char* name, std::initializer_list<const char*> choices) {
  const char* v = given(name);
  if (!v) return std::nullopt;
  std::string list;
  for (const char* c : choices) {
    if (std::strcmp(v, c) == 0) return std::string(v);
    list += list.empty() ? "" : ", ";
    list += c;
  }
  fail("environment variable ", name, "='", v, "': expected one of ", list);
}

std::string env_list(const char* name, std::initializer_list<const char*> choices) {
  const char* v = given(name);
  if (!v) return "";
  const std::string s(v);
  std::string list;
  for (const char* c : choices) list += (list.empty() ? "" : ", ") + std::string(c);
  for (size_t b = 0; b <= s.size();) {
    const size_t e = std::min(s.find(',', b), s.size());
    const std::string item = s.substr(b, e - b);
    bool known = false;
    for (const char* c : choices) known = known || item == c;
    if (!known)
      fail("environment variable ", name, "='", v, "': item '", item, "' is not one of ", list,
           " (comma-separated)");
    b = e + 1;
  }
  return s;
}

}  // namespace mmfp4
