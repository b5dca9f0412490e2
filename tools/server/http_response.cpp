#include "server/http_response.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>

#include "core/error.h"

namespace mmfp4::server {

std::string HttpResponseWriter::head(int status, std::string_view content_type, const std::vector<HttpHeader>& extra,
                                     bool streaming, size_t content_length) const {
  std::string h = cat("HTTP/1.", version_minor_, " ", status, " ", http_status_reason(status), "\r\n");
  h += "Server: mmfp4\r\n";
  if (!content_type.empty()) {
    h += "Content-Type: ";
    h += content_type;
    h += "\r\n";
  }
  if (!streaming) {
    h += cat("Content-Length: ", content_length, "\r\n");
  } else if (version_minor_ >= 1) {
    h += "Transfer-Encoding: chunked\r\n";
  }
  // HTTP/1.0 has no chunked coding: a streamed body ends when the connection closes.
  const bool keep = keep_alive_ && !(streaming && version_minor_ == 0);
  h += keep ? (version_minor_ == 0 ? "Connection: keep-alive\r\n" : "") : "Connection: close\r\n";
  for (const auto& x : extra) {
    h += x.name;
    h += ": ";
    h += x.value;
    h += "\r\n";
  }
  h += "\r\n";
  return h;
}

bool HttpResponseWriter::send_all(std::string_view data) {
  if (failed_) return false;
  while (!data.empty()) {
    // MSG_NOSIGNAL: a closed peer gives EPIPE rather than killing the process with SIGPIPE. The socket's send
    // timeout (SO_SNDTIMEO) bounds how long a client that stopped reading can hold this thread.
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed_ = true;
      return false;
    }
    data.remove_prefix(size_t(n));
  }
  return true;
}

void HttpResponseWriter::send(int status, std::string_view content_type, std::string_view body,
                              const std::vector<HttpHeader>& extra) {
  MMFP4_ASSERT(!started_);
  started_ = true;
  status_ = status;
  std::string out = head(status, content_type, extra, false, body.size());
  if (!head_only_) out += body;
  complete();
  send_all(out);
}

void HttpResponseWriter::complete() {
  if (!on_complete) return;
  const auto f = std::move(on_complete);
  on_complete = nullptr;
  f(status_);
}

bool HttpResponseWriter::begin_stream(int status, std::string_view content_type, const std::vector<HttpHeader>& extra) {
  MMFP4_ASSERT(!started_);
  started_ = streaming_ = true;
  status_ = status;
  if (version_minor_ == 0) keep_alive_ = false;
  return send_all(head(status, content_type, extra, true, 0));
}

bool HttpResponseWriter::write(std::string_view data) {
  MMFP4_ASSERT(streaming_ && !ended_);
  if (data.empty() || head_only_) return !failed_;  // an empty chunk would end the body
  if (version_minor_ == 0) return send_all(data);
  char size[24];
  const int k = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out;
  out.reserve(size_t(k) + data.size() + 2);
  out.append(size, size_t(k));
  out += data;
  out += "\r\n";
  return send_all(out);
}

bool HttpResponseWriter::end_stream() {
  MMFP4_ASSERT(streaming_);
  if (ended_) return !failed_;
  ended_ = true;
  complete();
  if (version_minor_ == 0 || head_only_) return !failed_;
  return send_all("0\r\n\r\n");
}

bool HttpResponseWriter::client_gone() const {
  if (failed_) return true;
  pollfd p{fd_, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace mmfp4::server
