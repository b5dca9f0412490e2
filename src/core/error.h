// Errors: bad input (a file, a config field, a request) is reported by throwing mmfp4::Error with a message that
// names what was wrong and where. Our own broken invariants use MMFP4_ASSERT, which aborts with file:line: an
// assert is never reachable from user input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mmfp4 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// cat(a, b, c) -> "abc" using operator<< for each piece: used to build error messages without <format> (GCC 12).
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(cat(std::forward<Args>(args)...));
}

// Shape of a tensor as text: [2, 3, 4].
template <typename Vec>
std::string shape_str(const Vec& v) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
  return os.str();
}

}  // namespace mmfp4

#define MMFP4_ASSERT(cond)                                                                   \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "mmfp4 internal error: %s:%d: assertion failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                                         \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
