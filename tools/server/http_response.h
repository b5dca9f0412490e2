// Writes one HTTP/1.1 response on a connection: whole (Content-Length) or streamed (chunked transfer coding on
// HTTP/1.1, close-delimited on HTTP/1.0). Used by the connection's own thread only. A write that fails (the client
// closed, or stopped reading for longer than the send timeout) marks the writer failed: later writes return false
// at once and the connection is closed after the handler returns.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http_message.h"

namespace mmfp4::server {

class HttpResponseWriter {
 public:
  HttpResponseWriter(int fd, const HttpRequest& req)
      : fd_(fd), version_minor_(req.version_minor), keep_alive_(req.keep_alive), head_only_(req.method == "HEAD") {}

  // The whole response at once.
  void send(int status, std::string_view content_type, std::string_view body, const std::vector<HttpHeader>& extra = {});

  // A streamed response: the head now, then write() pieces, then end_stream(). Each returns false once the client
  // is gone.
  bool begin_stream(int status, std::string_view content_type, const std::vector<HttpHeader>& extra = {});
  bool write(std::string_view data);
  bool end_stream();

  // True when the peer has closed its side or reset the connection (checked without blocking or reading, so a
  // pipelined next request is left alone), or when a write failed.
  bool client_gone() const;
  int socket() const { return fd_; }

  bool started() const { return started_; }
  int status() const { return status_; }
  bool failed() const { return failed_; }
  // Whether the connection may serve another request after this response.
  bool keep_alive() const { return keep_alive_ && !failed_ && (!streaming_ || ended_); }
  // Answer with "Connection: close" (e.g. after a request whose body was not read).
  void close_after() { keep_alive_ = false; }

  // Called once with the status just before the last bytes of a complete response (send, or end_stream's end) are
  // written: whatever it records is in place before the client can see the response end (the server's metrics).
  std::function<void(int status)> on_complete;

 private:
  std::string head(int status, std::string_view content_type, const std::vector<HttpHeader>& extra, bool streaming,
                   size_t content_length) const;
  bool send_all(std::string_view data);
  void complete();  // runs on_complete once

  int fd_;
  int version_minor_;
  bool keep_alive_;
  bool head_only_;  // a HEAD request: the head of the response, never a body
  bool started_ = false, streaming_ = false, ended_ = false, failed_ = false;
  int status_ = 0;
};

}  // namespace mmfp4::server
