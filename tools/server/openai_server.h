// The OpenAI-compatible server: routes, API-key check, model loading in the background, metrics.
//
//   GET  /health                200 {"status": "ok"} once the model is loaded; 503 while it loads
//   GET  /metrics               Prometheus text
//   GET  /v1/models             the served model (and /v1/models/{id})
//   POST /v1/completions        text completion (prompt as text or token ids), optionally streamed
//   POST /v1/chat/completions   chat completion with the model's chat template, optionally streamed
//
// It listens before the model is loaded (start(), then load() or set_engine()), so /health can tell a load
// balancer to wait. With an API key every /v1/ route wants "Authorization: Bearer <key>"; /health and /metrics
// stay open. It only posts requests to the engine: the engine batches them.
//
//   OpenAIServer s({.http = {.port = 8080}});
//   s.start();
//   s.load(engine_options);   // background
//   ... s.stop();
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mmfp4/engine.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/request_validation.h"
#include "server/router.h"

namespace mmfp4::server {

struct ServerOptions {
  HttpServerOptions http;
  std::string api_key;                     // "" = no authentication
  std::string served_model_name;           // "" = the engine's model_name() (the folder name)
  std::vector<std::string> model_aliases;  // other names accepted in "model" (e.g. the -m path)
  ValidationLimits limits;
  // Sampling defaults for fields a request leaves out: the model's generation_config.json, passed through this
  // when set (mmfp4 serve applies its --temp, --top-p, ... options here).
  std::function<SamplingParams(const SamplingParams& model_defaults)> sampling_defaults;
};

class OpenAIServer {
 public:
  enum class State { Loading, Ready, Failed };

  explicit OpenAIServer(ServerOptions opt);
  ~OpenAIServer();
  OpenAIServer(const OpenAIServer&) = delete;
  OpenAIServer& operator=(const OpenAIServer&) = delete;

  // Binds and listens (throws mmfp4::Error naming the address). Generation routes answer 503 until a model is set.
  void start();
  int port() const { return http_.port(); }
  // Opens the engine on a background thread; failure leaves the server in State::Failed with the message.
  void load(EngineOptions eo);
  // Serves an engine opened elsewhere.
  void set_engine(std::shared_ptr<Engine> engine);
  State state() const;
  std::string load_error() const;
  // Waits until the model is loaded or failed (timeout_s < 0: forever); returns the state.
  State wait_loaded(double timeout_s = -1) const;
  // Closes every connection (their requests are cancelled), then releases the engine. Idempotent.
  void stop();

  std::shared_ptr<Engine> engine() const;
  const ServerMetrics& metrics() const { return metrics_; }
  int open_connections() const { return http_.open_connections(); }

 private:
  void handle(const HttpRequest& req, HttpResponseWriter& w);
  void on_http_error(const HttpRequest* req, int status, const std::string& message, HttpResponseWriter& w);
  bool authorized(const HttpRequest& req) const;
  std::shared_ptr<Engine> require_engine() const;  // ApiError 503 while loading
  void add_routes();

  ServerOptions opt_;
  ServerMetrics metrics_;
  Router router_;
  HttpServer http_;
  int64_t created_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  State state_ = State::Loading;
  std::string load_error_;
  std::shared_ptr<Engine> engine_;
  std::string served_;
  SamplingParams defaults_;
  std::thread loader_;
};

}  // namespace mmfp4::server
