#include "server/router.h"

namespace mmfp4::server {

void Router::add(std::string method, std::string pattern, RouteHandler handler) {
  routes_.push_back({std::move(method), std::move(pattern), std::move(handler)});
}

bool Router::matches(const std::string& pattern, const std::string& path) {
  if (!pattern.empty() && pattern.back() == '*') {
    const size_t n = pattern.size() - 1;
    return path.size() > n && path.compare(0, n, pattern, 0, n) == 0;
  }
  return pattern == path;
}

Router::Match Router::find(const std::string& method, const std::string& path) const {
  Match m;
  for (const auto& r : routes_) {
    if (!matches(r.pattern, path)) continue;
    if (m.pattern.empty()) m.pattern = r.pattern;
    if (r.method == method) {
      m.handler = &r.handler;
      m.pattern = r.pattern;
      return m;
    }
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += r.method;
  }
  return m;
}

}  // namespace mmfp4::server
