// A small blocking HTTP/1.1 client over one keep-alive connection, for the server's tests and the load
// generator (bench/server): Content-Length, chunked and close-delimited responses, raw bytes for malformed-request
// tests, and a streaming read that hands over the body as it arrives (SSE). Errors throw mmfp4::Error.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http_message.h"

namespace mmfp4::server {

struct HttpClientResponse {
  int status = 0;
  std::vector<HttpHeader> headers;  // names lower-cased
  std::string body;                 // decoded
  const std::string* header(std::string_view lower_name) const;
};

class HttpClient {
 public:
  HttpClient(std::string host, int port, double timeout_s = 60);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // A whole request and its response; (re)connects when needed.
  HttpClientResponse request(const std::string& method, const std::string& path, const std::string& body = "",
                             const std::vector<HttpHeader>& headers = {});
  // The same, handing the decoded body to on_data as it arrives; on_data returns false to stop reading, and the
  // connection is then closed (as a client that hangs up).
  HttpClientResponse stream(const std::string& method, const std::string& path, const std::string& body,
                            const std::vector<HttpHeader>& headers,
                            const std::function<bool(std::string_view)>& on_data);

  // Raw access: connect, send any bytes, read one response (body whole), check whether the server closed.
  void connect();
  void send_raw(std::string_view bytes);
  HttpClientResponse read_response(const std::function<bool(std::string_view)>& on_data = nullptr);
  // True when the server has closed the connection (waits up to timeout_s for EOF).
  bool server_closed(double timeout_s);
  void close();
  bool connected() const { return fd_ >= 0; }

 private:
  bool fill(std::string& buf);  // false on EOF
  std::string host_;
  int port_;
  double timeout_s_;
  int fd_ = -1;
  std::string buf_;  // received, not yet consumed
};

// Splits a server-sent event stream into the payloads of its "data:" lines.
class SseSplitter {
 public:
  std::vector<std::string> push(std::string_view bytes);

 private:
  std::string pending_;
};

}  // namespace mmfp4::server
