#include "server/http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "server/http_parser.h"

namespace mmfp4::server {
namespace {

void set_timeout(int fd, int opt, double seconds) {
  timeval tv{};
  tv.tv_sec = time_t(seconds);
  tv.tv_usec = suseconds_t((seconds - double(tv.tv_sec)) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

// Reads what is available into buf, waiting until `deadline` (now_seconds() clock). 1: got bytes, 0: the peer
// closed, -1: timed out, -2: error (including a shutdown by stop()).
int read_some(int fd, std::string& buf, double deadline) {
  while (true) {
    const double left = deadline - now_seconds();
    if (left <= 0) return -1;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, int(std::ceil(left * 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -2;
    if (r == 0) continue;  // the loop re-checks the deadline
    char tmp[65536];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return -2;
    if (n == 0) return 0;
    buf.append(tmp, size_t(n));
    return 1;
  }
}

// After refusing a request whose body may still be arriving (413, a malformed request), the rest is read and
// dropped for a moment before closing: closing with unread data makes the kernel send a reset, which can destroy
// the answer before the client reads it ("lingering close", as Apache and nginx do). Bounded in time and bytes.
void drain_before_close(int fd) {
  ::shutdown(fd, SHUT_WR);
  const double end = now_seconds() + 2.0;
  size_t dropped = 0;
  char tmp[65536];
  while (dropped < (64u << 20)) {
    const double left = end - now_seconds();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, int(std::ceil(left * 1000))) <= 0) break;
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    dropped += size_t(n);
  }
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions opt, HttpHandler handler, HttpErrorHandler on_error)
    : opt_(std::move(opt)), handler_(std::move(handler)), on_error_(std::move(on_error)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  MMFP4_ASSERT(listen_fd_ < 0);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(opt_.port);
  const int gai = ::getaddrinfo(opt_.host.empty() ? nullptr : opt_.host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) fail("cannot listen on ", opt_.host, ":", opt_.port, ": ", gai_strerror(gai));
  std::string last_error = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      listen_fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (listen_fd_ < 0) fail("cannot listen on ", opt_.host, ":", opt_.port, ": ", last_error);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                   : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) fail("eventfd: ", std::strerror(errno));
  acceptor_ = std::thread([this] { accept_loop(); });
}

void HttpServer::stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  {
    // Wakes every connection thread: reads fail, a handler waiting for the engine sees its client gone.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : conns_) ::shutdown(c->fd, SHUT_RDWR);
  }
  reap(true);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

int HttpServer::open_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& c : conns_) n += c->done ? 0 : 1;
  return n;
}

void HttpServer::reap(bool all) {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (all || (*it)->done) {
        finished.push_back(std::move(*it));
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // The descriptor is closed only here, after the thread ended, so stop() never shuts down a reused number.
  for (auto& c : finished) {
    if (c->thread.joinable()) c->thread.join();
    ::close(c->fd);
  }
}

void HttpServer::refuse(int fd, int status, const std::string& message) {
  // Best effort and never blocking: the acceptor must not wait on a client.
  const std::string body = cat("{\"error\":{\"message\":\"", message, "\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
  const std::string out = cat("HTTP/1.1 ", status, " ", http_status_reason(status),
                              "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                              "\r\nConnection: close\r\n\r\n", body);
  [[maybe_unused]] ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
}

void HttpServer::accept_loop() {
  while (!stopping_) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int r = ::poll(p, 2, 1000);
    reap(false);
    if (r < 0 && errno != EINTR) {
      log_warn("server: poll failed: ", std::strerror(errno));
      break;
    }
    if (stopping_ || r <= 0 || !(p[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // EMFILE and friends: back off a little rather than spin.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        log_warn("server: accept failed: ", std::strerror(errno));
        ::poll(nullptr, 0, 50);
      }
      continue;
    }
    if (open_connections() >= opt_.max_connections) {
      refuse(fd, 503, cat("too many connections (the limit is ", opt_.max_connections, ")"));
      continue;
    }
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    Connection* raw = c.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns_.push_back(std::move(c));
    }
    try {
      raw->thread = std::thread([this, raw] {
        serve(*raw);
        ::shutdown(raw->fd, SHUT_RDWR);
        raw->done = true;
      });
    } catch (const std::system_error&) {
      // Out of threads: the connection is dropped (the reaper closes it).
      raw->done = true;
    }
  }
}

void HttpServer::send_error(const HttpRequest* req, int status, const std::string& message, HttpResponseWriter& w) {
  w.close_after();
  if (on_error_) {
    on_error_(req, status, message, w);
  } else {
    w.send(status, "text/plain; charset=utf-8", message + "\n");
  }
}

void HttpServer::serve(Connection& c) {
  const int fd = c.fd;
  const int one = 1;
  // Streaming writes small SSE chunks: without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms stalls.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeout(fd, SO_SNDTIMEO, opt_.send_timeout_s);

  HttpRequestParser parser(opt_.limits);
  std::string buf;
  double idle_deadline = now_seconds() + opt_.idle_timeout_s, request_deadline = 0;
  bool sent_continue = false;
  HttpRequest none;
  none.keep_alive = false;
  while (!stopping_) {
    const auto st = parser.parse(buf);
    if (st == HttpRequestParser::Status::Error) {
      HttpResponseWriter w(fd, none);
      send_error(parser.head_done() ? &parser.request() : nullptr, parser.error_status(), parser.error_message(), w);
      if (!stopping_) drain_before_close(fd);
      return;
    }
    if (st == HttpRequestParser::Status::Done) {
      const HttpRequest& req = parser.request();
      HttpResponseWriter w(fd, req);
      if (stopping_) w.close_after();
      try {
        handler_(req, w);
      } catch (const std::exception& ex) {
        log_warn("server: ", req.method, " ", req.path, ": ", ex.what());
        if (w.started()) return;  // a broken stream cannot be repaired: close it
        send_error(&req, 500, cat("internal error: ", ex.what()), w);
      }
      if (!w.started()) {
        if (w.client_gone()) return;  // nobody to answer
        send_error(&req, 500, "internal error: the handler sent no response", w);
      }
      if (!w.keep_alive()) return;
      parser.reset();
      sent_continue = false;
      request_deadline = 0;
      idle_deadline = now_seconds() + opt_.idle_timeout_s;
      continue;
    }
    if (parser.head_done() && parser.request().expect_continue && !sent_continue) {
      sent_continue = true;
      static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      if (::send(fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL) < 0) return;
    }
    if (request_deadline == 0 && parser.started(buf)) request_deadline = now_seconds() + opt_.request_timeout_s;
    const int r = read_some(fd, buf, request_deadline > 0 ? request_deadline : idle_deadline);
    if (r == 1) {
      if (request_deadline == 0) request_deadline = now_seconds() + opt_.request_timeout_s;
      continue;
    }
    if (r == -1 && request_deadline > 0) {
      HttpResponseWriter w(fd, none);
      send_error(parser.head_done() ? &parser.request() : nullptr, 408,
                 cat("the request did not arrive within ", opt_.request_timeout_s, " s"), w);
    }
    return;  // closed by the peer, idle, or shut down by stop()
  }
}

}  // namespace mmfp4::server
