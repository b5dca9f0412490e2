// An in-process server on an ephemeral loopback port over the tiny Qwen3 model, and helpers to talk to it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "core/log.h"
#include "mmfp4/engine.h"
#include "server/http_client.h"
#include "server/openai_server.h"

namespace mmfp4::server::testing {

inline std::string tiny_model() { return std::string(MMFP4_SHARED_DIR) + "/models/tiny-qwen3-mmfp4"; }

inline EngineOptions tiny_options(int64_t max_batch = 8, int64_t ctx = 256) {
  EngineOptions o;
  o.model_dir = tiny_model();
  o.device = "cpu";
  o.max_batch = max_batch;
  o.max_context = ctx;
  o.max_batch_tokens = 64;
  return o;
}

struct TestServer {
  std::shared_ptr<Engine> engine;
  std::unique_ptr<OpenAIServer> server;

  explicit TestServer(ServerOptions so = {}, const EngineOptions& eo = tiny_options(), bool load = true) {
    so.http.host = "127.0.0.1";
    so.http.port = 0;
    server = std::make_unique<OpenAIServer>(so);
    server->start();
    if (load) {
      engine = Engine::open(eo);
      server->set_engine(engine);
    }
  }
  ~TestServer() { server->stop(); }
  int port() const { return server->port(); }
  std::unique_ptr<HttpClient> client(double timeout_s = 30) const {
    return std::make_unique<HttpClient>("127.0.0.1", port(), timeout_s);
  }
  HttpClientResponse post(const std::string& path, const std::string& body,
                          const std::vector<HttpHeader>& headers = {}) const {
    return client()->request("POST", path, body, headers);
  }
  HttpClientResponse get(const std::string& path, const std::vector<HttpHeader>& headers = {}) const {
    return client()->request("GET", path, "", headers);
  }
  // Polls until pred() or the timeout; returns pred().
  template <typename F>
  static bool eventually(F pred, double timeout_s = 5) {
    const double end = now_seconds() + timeout_s;
    while (now_seconds() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
  }
};

inline json::Value parse_json(const std::string& s) { return json::parse(s, "response"); }

inline std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

inline std::vector<int32_t> ids_of(const json::Value& a) {
  std::vector<int32_t> out;
  for (const auto& x : a.as_array()) out.push_back(int32_t(x.as_int()));
  return out;
}

// Deterministic token-id prompts (ids well inside the 8192-token vocabulary).
inline std::vector<int32_t> prompt_ids(size_t n, uint64_t seed) {
  std::vector<int32_t> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& id : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    id = int32_t(1 + x % 8000);
  }
  return v;
}

// Checks an OpenAI error response: the status, and {"error": {"message", "type", "param", "code"}}.
inline void expect_error(const HttpClientResponse& r, int status, const std::string& says = "",
                         const std::string& param = "") {
  EXPECT_EQ(r.status, status) << r.body;
  json::Value v;
  try {
    v = parse_json(r.body);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "error body is not JSON: " << r.body;
    return;
  }
  const json::Value* e = v.find("error");
  ASSERT_TRUE(e && e->is_object()) << r.body;
  ASSERT_TRUE(e->find("message") && (*e)["message"].is_string()) << r.body;
  EXPECT_FALSE((*e)["message"].as_string().empty());
  EXPECT_TRUE(e->find("type") && (*e)["type"].is_string()) << r.body;
  EXPECT_TRUE(e->find("param") && ((*e)["param"].is_null() || (*e)["param"].is_string())) << r.body;
  EXPECT_TRUE(e->find("code") != nullptr) << r.body;
  if (!says.empty()) {
    EXPECT_NE((*e)["message"].as_string().find(says), std::string::npos) << r.body;
  }
  if (!param.empty()) {
    EXPECT_EQ((*e)["param"].is_string() ? (*e)["param"].as_string() : "", param) << r.body;
  }
}

}  // namespace mmfp4::server::testing
