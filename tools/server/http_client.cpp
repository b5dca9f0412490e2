#include "server/http_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace mmfp4::server {

const std::string* HttpClientResponse::header(std::string_view lower_name) const {
  for (const auto& h : headers)
    if (h.name == lower_name) return &h.value;
  return nullptr;
}

HttpClient::HttpClient(std::string host, int port, double timeout_s)
    : host_(std::move(host)), port_(port), timeout_s_(timeout_s) {}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
}

void HttpClient::connect() {
  close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(port_);
  if (const int g = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); g != 0)
    fail("cannot resolve ", host_, ": ", gai_strerror(g));
  std::string err = "no address";
  for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      fd_ = fd;
    } else {
      err = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) fail("cannot connect to ", host_, ":", port_, ": ", err);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void HttpClient::send_raw(std::string_view bytes) {
  if (fd_ < 0) connect();
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("send to ", host_, ":", port_, " failed: ", std::strerror(errno));
    bytes.remove_prefix(size_t(n));
  }
}

bool HttpClient::fill(std::string& buf) {
  pollfd p{fd_, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, int(timeout_s_ * 1000));
  } while (r < 0 && errno == EINTR);
  if (r == 0) fail("no answer from ", host_, ":", port_, " within ", timeout_s_, " s");
  char tmp[65536];
  const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
  if (n < 0 && errno == ECONNRESET) return false;
  if (n < 0) fail("recv failed: ", std::strerror(errno));
  if (n == 0) return false;
  buf.append(tmp, size_t(n));
  return true;
}

bool HttpClient::server_closed(double timeout_s) {
  if (fd_ < 0) return true;
  const double end = now_seconds() + timeout_s;
  while (now_seconds() < end) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char tmp[4096];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return true;
  }
  return false;
}

HttpClientResponse HttpClient::read_response(const std::function<bool(std::string_view)>& on_data) {
  HttpClientResponse res;
  while (true) {
    // Head.
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(buf_)) fail("the server closed the connection before a complete response head");
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) fail("malformed status line: ", head.substr(0, 80));
    res = HttpClientResponse();
    res.status = std::atoi(head.c_str() + 9);
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon), value = line.substr(colon + 1);
        for (char& c : name) c = char(std::tolower((unsigned char)c));
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        res.headers.push_back({name, value});
      }
      pos = next;
    }
    if (res.status != 100) break;  // skip interim "100 Continue"
  }
  bool stop = false;
  auto deliver = [&](std::string_view piece) {
    if (on_data) {
      if (!stop && !on_data(piece)) stop = true;
    } else {
      res.body.append(piece);
    }
  };
  const std::string* te = res.header("transfer-encoding");
  const std::string* cl = res.header("content-length");
  if (te && te->find("chunked") != std::string::npos) {
    while (!stop) {
      size_t nl;
      while ((nl = buf_.find("\r\n")) == std::string::npos)
        if (!fill(buf_)) fail("connection closed inside a chunked body");
      const size_t n = std::stoul(buf_.substr(0, nl), nullptr, 16);
      buf_.erase(0, nl + 2);
      if (n == 0) {
        while ((nl = buf_.find("\r\n")) != 0) {  // trailers, then the empty line
          if (nl == std::string::npos) {
            if (!fill(buf_)) fail("connection closed inside chunked trailers");
          } else {
            buf_.erase(0, nl + 2);
          }
        }
        buf_.erase(0, 2);
        break;
      }
      while (buf_.size() < n + 2)
        if (!fill(buf_)) fail("connection closed inside a chunk");
      deliver(std::string_view(buf_).substr(0, n));
      buf_.erase(0, n + 2);
    }
  } else if (cl) {
    const size_t n = std::stoul(*cl);
    while (buf_.size() < n)
      if (!fill(buf_)) fail("connection closed inside a body");
    deliver(std::string_view(buf_).substr(0, n));
    buf_.erase(0, n);
  } else {
    // Close-delimited.
    while (!stop) {
      if (!buf_.empty()) {
        deliver(buf_);
        buf_.clear();
      }
      if (!fill(buf_)) break;
    }
    close();
  }
  const std::string* conn = res.header("connection");
  if (stop || (conn && *conn == "close")) close();
  return res;
}

HttpClientResponse HttpClient::stream(const std::string& method, const std::string& path, const std::string& body,
                                      const std::vector<HttpHeader>& headers,
                                      const std::function<bool(std::string_view)>& on_data) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + host_ + "\r\n";
  for (const auto& h : headers) req += h.name + ": " + h.value + "\r\n";
  if (!body.empty() || method == "POST") {
    if (!std::any_of(headers.begin(), headers.end(), [](const HttpHeader& h) { return h.name == "Content-Type"; }))
      req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;
  // A kept-alive connection the server has meanwhile closed fails on first use: retry once on a fresh one.
  for (int attempt = 0;; ++attempt) {
    const bool reused = fd_ >= 0;
    try {
      send_raw(req);
      return read_response(on_data);
    } catch (const Error&) {
      close();
      if (!reused || attempt > 0) throw;
    }
  }
}

HttpClientResponse HttpClient::request(const std::string& method, const std::string& path, const std::string& body,
                                       const std::vector<HttpHeader>& headers) {
  return stream(method, path, body, headers, nullptr);
}

std::vector<std::string> SseSplitter::push(std::string_view bytes) {
  pending_ += bytes;
  std::vector<std::string> out;
  size_t pos;
  while ((pos = pending_.find("\n\n")) != std::string::npos) {
    const std::string event = pending_.substr(0, pos);
    pending_.erase(0, pos + 2);
    size_t start = 0;
    while (start <= event.size()) {
      size_t nl = event.find('\n', start);
      if (nl == std::string::npos) nl = event.size();
      const std::string line = event.substr(start, nl - start);
      if (line.compare(0, 5, "data:") == 0) out.push_back(line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5));
      start = nl + 1;
    }
  }
  return out;
}

}  // namespace mmfp4::server
