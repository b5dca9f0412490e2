#include "server/openai_server.h"

#include <chrono>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/openai_endpoints.h"
#include "server/openai_response.h"

namespace mmfp4::server {
namespace {

// Compares without an early exit, so response timing does not reveal how much of a guessed key was right.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= (unsigned char)(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

json::Value model_json(const std::string& id, int64_t created, int64_t max_len) {
  json::Value m = json::Value::object();
  m.set("id", id);
  m.set("object", "model");
  m.set("created", created);
  m.set("owned_by", "mmfp4");
  m.set("max_model_len", max_len);  // vLLM's extension: the context length
  return m;
}

}  // namespace

OpenAIServer::OpenAIServer(ServerOptions opt)
    : opt_(std::move(opt)),
      http_(
          opt_.http, [this](const HttpRequest& req, HttpResponseWriter& w) { handle(req, w); },
          [this](const HttpRequest* req, int status, const std::string& message, HttpResponseWriter& w) {
            on_http_error(req, status, message, w);
          }),
      created_(unix_time()) {
  add_routes();
}

OpenAIServer::~OpenAIServer() { stop(); }

void OpenAIServer::start() { http_.start(); }

void OpenAIServer::stop() {
  http_.stop();
  if (loader_.joinable()) loader_.join();
  std::shared_ptr<Engine> e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    e = std::move(engine_);
  }
  e.reset();  // the engine's destructor stops its scheduler
}

void OpenAIServer::load(EngineOptions eo) {
  MMFP4_ASSERT(!loader_.joinable());
  loader_ = std::thread([this, eo] {
    const double t0 = now_seconds();
    try {
      std::shared_ptr<Engine> e = Engine::open(eo);
      log_info("server: model '", e->model_name(), "' loaded in ", now_seconds() - t0, " s: ", e->memory_plan());
      set_engine(std::move(e));
    } catch (const std::exception& ex) {
      std::lock_guard<std::mutex> lock(mu_);
      state_ = State::Failed;
      load_error_ = ex.what();
      cv_.notify_all();
    }
  });
}

void OpenAIServer::set_engine(std::shared_ptr<Engine> engine) {
  std::lock_guard<std::mutex> lock(mu_);
  served_ = opt_.served_model_name.empty() ? engine->model_name() : opt_.served_model_name;
  defaults_ = opt_.sampling_defaults ? opt_.sampling_defaults(engine->default_sampling()) : engine->default_sampling();
  engine_ = std::move(engine);
  state_ = State::Ready;
  cv_.notify_all();
}

OpenAIServer::State OpenAIServer::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::string OpenAIServer::load_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return load_error_;
}

OpenAIServer::State OpenAIServer::wait_loaded(double timeout_s) const {
  std::unique_lock<std::mutex> lock(mu_);
  auto done = [&] { return state_ != State::Loading; };
  if (timeout_s < 0) cv_.wait(lock, done);
  else cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), done);
  return state_;
}

std::shared_ptr<Engine> OpenAIServer::engine() const {
  std::lock_guard<std::mutex> lock(mu_);
  return engine_;
}

std::shared_ptr<Engine> OpenAIServer::require_engine() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == State::Failed)
    throw ApiError(503, cat("the model failed to load: ", load_error_), "", "model_load_failed");
  if (!engine_) throw ApiError(503, "the model is loading; retry shortly", "", "model_loading");
  return engine_;
}

bool OpenAIServer::authorized(const HttpRequest& req) const {
  if (opt_.api_key.empty()) return true;
  std::string key;
  if (const std::string* h = req.header("authorization")) {
    // "Bearer <key>" (the scheme is case-insensitive).
    if (h->size() > 7 && (h->compare(0, 7, "Bearer ") == 0 || h->compare(0, 7, "bearer ") == 0)) key = h->substr(7);
  } else if (const std::string* x = req.header("x-api-key")) {
    key = *x;
  }
  return same_secret(key, opt_.api_key);
}

void OpenAIServer::add_routes() {
  router_.add("GET", "/health", [this](const HttpRequest&, HttpResponseWriter& w) {
    require_engine();
    w.send(200, "application/json", "{\"status\":\"ok\"}");
  });
  router_.add("GET", "/metrics", [this](const HttpRequest&, HttpResponseWriter& w) {
    const std::shared_ptr<Engine> e = engine();
    EngineStats stats;
    if (e) stats = e->stats();
    w.send(200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render(e ? &stats : nullptr, http_.open_connections()));
  });
  auto models = [this](const std::string& only) {
    const std::shared_ptr<Engine> e = require_engine();
    // The list names the served model once; its aliases are accepted wherever a model name is.
    if (!only.empty()) {
      bool known = only == served_;
      for (const auto& a : opt_.model_aliases) known = known || only == a;
      if (!known) throw ApiError(404, cat("The model '", only, "' does not exist"), "model", "model_not_found");
      return model_json(only, created_, e->max_context());
    }
    json::Value data = json::Value::array();
    data.push_back(model_json(served_, created_, e->max_context()));
    json::Value list = json::Value::object();
    list.set("object", "list");
    list.set("data", std::move(data));
    return list;
  };
  router_.add("GET", "/v1/models", [models](const HttpRequest&, HttpResponseWriter& w) {
    w.send(200, "application/json", json::dump(models("")));
  });
  router_.add("GET", "/v1/models/*", [models](const HttpRequest& req, HttpResponseWriter& w) {
    w.send(200, "application/json", json::dump(models(req.path.substr(std::string("/v1/models/").size()))));
  });
  auto generation = [this](void (*fn)(const EndpointContext&, const HttpRequest&, HttpResponseWriter&)) {
    return [this, fn](const HttpRequest& req, HttpResponseWriter& w) {
      const std::shared_ptr<Engine> e = require_engine();
      const EndpointContext ctx{*e, metrics_, served_, opt_.model_aliases, opt_.limits, defaults_, now_seconds()};
      fn(ctx, req, w);
    };
  };
  router_.add("POST", "/v1/completions", generation(&handle_completions));
  router_.add("POST", "/v1/chat/completions", generation(&handle_chat_completions));
}

void OpenAIServer::handle(const HttpRequest& req, HttpResponseWriter& w) {
  const Router::Match m = router_.find(req.method, req.path);
  const std::string endpoint = m.pattern.empty() ? "other" : m.pattern;
  // The response is counted as it completes, before the client can see its end (a client reading /metrics right
  // after its response finds it counted); a response that never completes is counted on the way out.
  bool counted = false;
  w.on_complete = [&](int status) {
    metrics_.count_response(endpoint, status);
    counted = true;
  };
  struct Unhook {  // the writer may outlive this call: no callback into this frame afterwards
    HttpResponseWriter& w;
    ~Unhook() { w.on_complete = nullptr; }
  } unhook{w};
  try {
    if (m.pattern.empty())
      throw ApiError(404, cat("no such endpoint: ", req.method, " ", req.path.substr(0, 200)), "", "not_found");
    if (req.path.starts_with("/v1/") && !authorized(req))
      throw ApiError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')", "", "invalid_api_key");
    if (!m.handler)
      throw ApiError(405, cat("method ", req.method, " is not allowed on ", m.pattern, " (use ", m.allow, ")"), "",
                     "method_not_allowed");
    (*m.handler)(req, w);
  } catch (const std::exception& ex) {
    if (w.started()) {
      // Mid-stream: the response cannot change any more; the connection is closed.
      if (!counted) metrics_.count_response(endpoint, w.status());
      throw;
    }
    ApiError e(500, cat("internal error: ", ex.what()));
    if (auto* api = dynamic_cast<const ApiError*>(&ex)) e = *api;
    // An engine refusal that validation did not anticipate is still the client's request at fault.
    else if (dynamic_cast<const Error*>(&ex)) e = ApiError(400, ex.what());
    std::vector<HttpHeader> extra;
    if (e.status == 405) extra.push_back({"Allow", m.allow});
    if (e.status == 401) extra.push_back({"WWW-Authenticate", "Bearer"});
    if (e.status == 500) log_warn("server: ", req.method, " ", req.path, ": ", e.message);
    w.send(e.status, "application/json", error_body(e), extra);
  }
  if (!counted) metrics_.count_response(endpoint, w.started() ? w.status() : 499);
}

void OpenAIServer::on_http_error(const HttpRequest* req, int status, const std::string& message, HttpResponseWriter& w) {
  const std::string endpoint = req ? router_.find(req->method, req->path).pattern : "";
  send_error(w, ApiError(status, message));
  metrics_.count_response(endpoint.empty() ? "other" : endpoint, status);
}

}  // namespace mmfp4::server
