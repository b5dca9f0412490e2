// An HTTP/1.1 server on POSIX sockets: one thread accepts, one thread per connection reads requests (keep-alive,
// pipelining), calls the handler and writes its response. The connection thread is the one that waits for the
// engine while a request runs, so a handler may block; the number of connections is bounded.
//
// Defences against slow or hostile clients: a request (head and body) must arrive whole within request_timeout_s
// of its first byte (slowloris), an idle keep-alive connection is closed after idle_timeout_s, a client that stops
// reading a response for send_timeout_s is dropped, and sizes are bounded by HttpLimits (431 / 413).
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "server/http_message.h"
#include "server/http_response.h"

namespace mmfp4::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                 // 0: an ephemeral port (see HttpServer::port())
  HttpLimits limits;
  int max_connections = 512;       // more are answered 503 and closed
  double request_timeout_s = 30;   // from a request's first byte to its last
  double idle_timeout_s = 60;      // between requests on a keep-alive connection
  double send_timeout_s = 60;      // a response write that makes no progress for this long drops the client
};

// Called on the connection's thread for each request; it must answer through the writer (or leave it untouched
// when the client is gone). An exception before anything was sent becomes a 500.
using HttpHandler = std::function<void(const HttpRequest&, HttpResponseWriter&)>;
// Writes the answer to a request the server refuses itself (malformed, too large, too slow, too many
// connections), so the application can give its errors one shape. `req` is null when no request was parsed.
using HttpErrorHandler =
    std::function<void(const HttpRequest* req, int status, const std::string& message, HttpResponseWriter&)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions opt, HttpHandler handler, HttpErrorHandler on_error = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (throws mmfp4::Error naming the address), then accepts on a background thread.
  void start();
  // The bound port (the ephemeral one when options.port was 0).
  int port() const { return port_; }
  // Stops accepting, shuts every connection down (a handler waiting on its client sees it gone) and joins all
  // threads. Idempotent.
  void stop();
  int open_connections() const;

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void accept_loop();
  void serve(Connection& c);
  void refuse(int fd, int status, const std::string& message);
  void send_error(const HttpRequest* req, int status, const std::string& message, HttpResponseWriter& w);
  void reap(bool all);

  HttpServerOptions opt_;
  HttpHandler handler_;
  HttpErrorHandler on_error_;
  int listen_fd_ = -1, wake_fd_ = -1, port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::list<std::unique_ptr<Connection>> conns_;
};

}  // namespace mmfp4::server
