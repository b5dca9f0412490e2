// Method + path -> handler. A path that matches no route is 404; one that matches with another method is 405
// (with the Allow header listing the methods that would work). A pattern ending in '*' matches a prefix
// ("/v1/models/*").
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "server/http_message.h"
#include "server/http_response.h"

namespace mmfp4::server {

using RouteHandler = std::function<void(const HttpRequest&, HttpResponseWriter&)>;

class Router {
 public:
  void add(std::string method, std::string pattern, RouteHandler handler);

  struct Match {
    const RouteHandler* handler = nullptr;  // null: no route for this method
    std::string pattern;                    // the matching pattern ("" when none matched the path)
    std::string allow;                      // methods the path accepts, for a 405's Allow header
  };
  Match find(const std::string& method, const std::string& path) const;

 private:
  struct Route {
    std::string method, pattern;
    RouteHandler handler;
  };
  static bool matches(const std::string& pattern, const std::string& path);
  std::vector<Route> routes_;
};

}  // namespace mmfp4::server
