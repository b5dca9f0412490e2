// HTTP/1.1 messages as the server sees them: a parsed request with its limits, and the reason phrases of the
// status codes we send.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mmfp4::server {

// Bounds on what a client may send; past them the request is refused (431 / 413) before more is read, so a client
// cannot make the server buffer without limit.
struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;        // request line + headers (and chunked trailers)
  size_t max_headers = 100;                   // header lines
  size_t max_body_bytes = 8 * 1024 * 1024;    // decoded body, Content-Length or chunked
};

struct HttpHeader {
  std::string name;   // lower-cased (header names are case-insensitive)
  std::string value;  // leading/trailing whitespace removed
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ... (case-sensitive, as RFC 9110 says)
  std::string target;  // as sent: "/v1/models?x=1"
  std::string path;    // target before '?'
  std::string query;   // target after '?', "" if none
  int version_minor = 1;  // HTTP/1.<minor>
  std::vector<HttpHeader> headers;
  std::string body;       // decoded (chunked framing removed)
  bool keep_alive = true;        // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive"
  bool expect_continue = false;  // "Expect: 100-continue": the client waits for a 100 before sending the body

  // The first header of that (lower-case) name, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

// "OK", "Not Found", ...; "Unknown" for codes we never send.
const char* http_status_reason(int status);

}  // namespace mmfp4::server
