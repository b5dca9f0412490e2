// Every class of bad request gets its 4xx with an OpenAI error object naming the problem: malformed JSON, wrong
// types and ranges, unsupported fields, context overflow, unknown model (404), unknown path (404), wrong method
// (405), missing or wrong API key (401), full queue (429), oversized body (413) and headers (431), garbage bytes,
// slow clients (408). The server keeps serving afterwards.
#include <sys/socket.h>

#include <random>

#include "server_test_util.h"

namespace mmfp4::server::testing {
namespace {

TestServer& shared() {
  static TestServer* s = [] {
    ServerOptions so;
    so.http.limits.max_body_bytes = 64 * 1024;
    so.http.limits.max_header_bytes = 4096;
    so.http.request_timeout_s = 0.5;
    so.http.idle_timeout_s = 0.5;
    so.model_aliases = {"tiny"};
    return new TestServer(so);
  }();
  return *s;
}

struct BadCase {
  const char* path;
  std::string body;
  int status;
  const char* says;
  const char* param;
};

TEST(ServerErrors, EveryMalformedRequestGetsA4xxNamingTheProblem) {
  TestServer& s = shared();
  const std::string C = "/v1/completions", H = "/v1/chat/completions";
  const std::string ok_msgs = R"("messages": [{"role": "user", "content": "Hi"}])";
  const BadCase cases[] = {
      // Body.
      {"/v1/completions", "", 400, "empty", ""},
      {"/v1/completions", "{\"prompt\": \"x\",", 400, "invalid JSON", ""},
      {"/v1/completions", "{\"prompt\": \"x\"} trailing", 400, "invalid JSON", ""},
      {"/v1/completions", "[1, 2]", 400, "must be a JSON object", ""},
      {"/v1/completions", "\xff\xfe{}", 400, "invalid JSON", ""},
      {"/v1/completions", std::string(100, '[') , 400, "invalid JSON", ""},
      // Prompt.
      {"/v1/completions", "{}", 400, "'prompt' is required", "prompt"},
      {"/v1/completions", "{\"prompt\": 5}", 400, "'prompt' must be", "prompt"},
      {"/v1/completions", "{\"prompt\": []}", 400, "empty list", "prompt"},
      {"/v1/completions", "{\"prompt\": [1, 99999]}", 400, "outside the vocabulary", "prompt"},
      {"/v1/completions", "{\"prompt\": [1, -1]}", 400, "outside the vocabulary", "prompt"},
      {"/v1/completions", "{\"prompt\": [1, 2.5]}", 400, "not an integer", "prompt"},
      {"/v1/completions", "{\"prompt\": [[1], {}]}", 400, "'prompt' must be", "prompt"},
      {"/v1/completions", "{\"prompt\": \"\"}", 400, "empty", "prompt"},
      // Typed fields with ranges.
      {"/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 0}", 400, "'max_tokens' must be in [1", "max_tokens"},
      {"/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": \"8\"}", 400, "must be an integer", "max_tokens"},
      {"/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1.5}", 400, "must be an integer", "max_tokens"},
      {"/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1e300}", 400, "must be an integer", "max_tokens"},
      {"/v1/completions", "{\"prompt\": \"x\", \"temperature\": 2.5}", 400, "'temperature' must be in [0, 2]", "temperature"},
      {"/v1/completions", "{\"prompt\": \"x\", \"temperature\": -1}", 400, "temperature", "temperature"},
      {"/v1/completions", "{\"prompt\": \"x\", \"temperature\": true}", 400, "must be a number", "temperature"},
      {"/v1/completions", "{\"prompt\": \"x\", \"top_p\": 0}", 400, "'top_p' must be in (0, 1]", "top_p"},
      {"/v1/completions", "{\"prompt\": \"x\", \"top_p\": 1.01}", 400, "top_p", "top_p"},
      {"/v1/completions", "{\"prompt\": \"x\", \"top_k\": -2}", 400, "top_k", "top_k"},
      {"/v1/completions", "{\"prompt\": \"x\", \"min_p\": 1.5}", 400, "min_p", "min_p"},
      {"/v1/completions", "{\"prompt\": \"x\", \"presence_penalty\": 2.5}", 400, "presence_penalty", "presence_penalty"},
      {"/v1/completions", "{\"prompt\": \"x\", \"frequency_penalty\": -3}", 400, "frequency_penalty", "frequency_penalty"},
      {"/v1/completions", "{\"prompt\": \"x\", \"repetition_penalty\": 0}", 400, "repetition_penalty", "repetition_penalty"},
      {"/v1/completions", "{\"prompt\": \"x\", \"seed\": \"1\"}", 400, "must be an integer", "seed"},
      {"/v1/completions", "{\"prompt\": \"x\", \"n\": 0}", 400, "'n' must be in [1, 16]", "n"},
      {"/v1/completions", "{\"prompt\": \"x\", \"n\": 17}", 400, "'n' must be in [1, 16]", "n"},
      {"/v1/completions", "{\"prompt\": [\"a\", \"b\", \"c\"], \"n\": 8}", 400, "choices", "n"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stop\": 5}", 400, "'stop' must be", "stop"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stop\": [\"a\", 1]}", 400, "'stop' must be", "stop"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stop\": \"\"}", 400, "must not be empty", "stop"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stop\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}", 400, "at most 16", "stop"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stop_token_ids\": [99999]}", 400, "token ids", "stop_token_ids"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stream\": \"yes\"}", 400, "must be a boolean", "stream"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}", 400, "only allowed when 'stream' is true", "stream_options"},
      {"/v1/completions", "{\"prompt\": \"x\", \"stream\": true, \"stream_options\": 3}", 400, "must be an object", "stream_options"},
      {"/v1/completions", "{\"prompt\": \"x\", \"echo\": 1}", 400, "must be a boolean", "echo"},
      // Known but unsupported.
      {"/v1/completions", "{\"prompt\": \"x\", \"logprobs\": 2}", 400, "not supported", "logprobs"},
      {"/v1/completions", "{\"prompt\": \"x\", \"logprobs\": true}", 400, "must be an integer", "logprobs"},
      {"/v1/completions", "{\"prompt\": \"x\", \"logprobs\": 0, \"echo\": true}", 400, "prompt log-probabilities", "echo"},
      {"/v1/completions", "{\"prompt\": \"x\", \"suffix\": \"y\"}", 400, "not supported", "suffix"},
      {"/v1/completions", "{\"prompt\": \"x\", \"best_of\": 3}", 400, "not supported", "best_of"},
      {"/v1/completions", "{\"prompt\": \"x\", \"logit_bias\": {\"5\": 10}}", 400, "not supported", "logit_bias"},
      {"/v1/completions", "{\"prompt\": \"x\", \"min_tokens\": 3}", 400, "not supported", "min_tokens"},
      {"/v1/chat/completions", "{" + ok_msgs + ", \"top_logprobs\": 3, \"logprobs\": true}", 400, "not supported", "top_logprobs"},
      {"/v1/chat/completions", "{" + ok_msgs + ", \"tools\": [{\"type\": \"function\"}]}", 400, "not supported", "tools"},
      {"/v1/chat/completions", "{" + ok_msgs + ", \"response_format\": {\"type\": \"json_object\"}}", 400, "response_format", "response_format"},
      {"/v1/chat/completions", "{" + ok_msgs + ", \"logprobs\": 1}", 400, "must be a boolean", "logprobs"},
      // Messages.
      {"/v1/chat/completions", "{}", 400, "'messages' is required", "messages"},
      {"/v1/chat/completions", "{\"messages\": []}", 400, "must not be empty", "messages"},
      {"/v1/chat/completions", "{\"messages\": \"hi\"}", 400, "must be a list", "messages"},
      {"/v1/chat/completions", "{\"messages\": [5]}", 400, "messages[0] must be an object", "messages"},
      {"/v1/chat/completions", "{\"messages\": [{\"content\": \"x\"}]}", 400, "role must be a string", "messages"},
      {"/v1/chat/completions", "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}", 400, "'robot' is not one of", "messages"},
      {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\"}]}", 400, "content is required", "messages"},
      {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400, "content must be", "messages"},
      {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {}}]}]}", 400, "only text", "messages"},
      {"/v1/chat/completions", "{" + ok_msgs + ", \"chat_template_kwargs\": []}", 400, "must be an object", "chat_template_kwargs"},
      // Context.
      {"/v1/completions", "{\"prompt\": [1, 2, 3], \"max_tokens\": 254}", 400, "maximum context length is 256", "max_tokens"},
      {"/v1/completions", "{\"prompt\": " + ids_json(prompt_ids(256, 1)) + "}", 400, "leaving no room", "prompt"},
      {"/v1/chat/completions", "{" + ok_msgs + ", \"max_completion_tokens\": 300}", 400, "maximum context length", "max_tokens"},
      // Model.
      {"/v1/completions", "{\"prompt\": \"x\", \"model\": \"gpt-4o\"}", 404, "does not exist", "model"},
      {"/v1/chat/completions", "{" + ok_msgs + ", \"model\": 7}", 400, "must be a string", "model"},
  };
  HttpClient c("127.0.0.1", s.port());  // one keep-alive connection: a 4xx does not close it
  for (const auto& bc : cases) {
    SCOPED_TRACE(std::string(bc.path) + " " + bc.body.substr(0, 120));
    expect_error(c.request("POST", bc.path, bc.body), bc.status, bc.says, bc.param);
  }
  EXPECT_TRUE(c.connected());
  // Accepted names and unknown fields.
  for (const char* model : {"tiny-qwen3-mmfp4", "tiny"})
    EXPECT_EQ(c.request("POST", "/v1/completions",
                        std::string("{\"prompt\": \"x\", \"max_tokens\": 2, \"model\": \"") + model + "\", \"foo\": 1}").status,
              200);
  EXPECT_EQ(c.request("POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2, \"model\": null, \"seed\": null}").status, 200);
}

TEST(ServerErrors, UnknownPathsAndWrongMethods) {
  TestServer& s = shared();
  expect_error(s.get("/v2/nothing"), 404, "no such endpoint");
  expect_error(s.post("/v1/completions/", "{}"), 404, "no such endpoint");
  const auto r = s.get("/v1/completions");
  expect_error(r, 405, "not allowed");
  ASSERT_NE(r.header("allow"), nullptr);
  EXPECT_EQ(*r.header("allow"), "POST");
  expect_error(s.post("/health", "{}"), 405, "not allowed");
  expect_error(s.client()->request("DELETE", "/v1/models"), 405, "not allowed");
}

TEST(ServerErrors, ApiKeyIsRequiredOnV1Routes) {
  ServerOptions so;
  so.api_key = "sk-test-123";
  TestServer s(so);
  const std::string body = "{\"prompt\": \"x\", \"max_tokens\": 2}";
  expect_error(s.post("/v1/completions", body), 401, "API key");
  expect_error(s.post("/v1/completions", body, {{"Authorization", "Bearer sk-test-12"}}), 401, "API key");
  expect_error(s.post("/v1/completions", body, {{"Authorization", "Bearer sk-test-1234"}}), 401, "API key");
  expect_error(s.post("/v1/completions", body, {{"Authorization", "Basic sk-test-123"}}), 401, "API key");
  expect_error(s.get("/v1/models"), 401, "API key");
  EXPECT_EQ(s.post("/v1/completions", body, {{"Authorization", "Bearer sk-test-123"}}).status, 200);
  EXPECT_EQ(s.get("/v1/models", {{"Authorization", "Bearer sk-test-123"}}).status, 200);
  EXPECT_EQ(s.get("/health").status, 200);
  EXPECT_EQ(s.get("/metrics").status, 200);
}

TEST(ServerErrors, FullQueueIs429) {
  EngineOptions eo = tiny_options(1, 4096);
  eo.max_queue = 2;
  TestServer s({}, eo);
  // Fill the engine directly: one running, the queue full.
  std::vector<uint64_t> ids;
  Request r;
  r.prompt = {1, 2, 3};
  r.max_new_tokens = 4000;
  r.ignore_eos = true;
  // The queue is full for sure once the engine itself counts max_queue waiting requests (its count is updated
  // between steps, so a refusal alone could be a moment early).
  ASSERT_TRUE(TestServer::eventually([&] {
    try {
      ids.push_back(s.engine->submit(r, nullptr));
      return false;
    } catch (const QueueFull&) {
      return s.engine->stats().requests_waiting >= eo.max_queue;
    }
  }));
  expect_error(s.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2}"), 429, "queue is full");
  expect_error(s.post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}"), 429,
               "queue is full");
  for (uint64_t id : ids) s.engine->cancel(id);
  EXPECT_TRUE(TestServer::eventually([&] {
    return s.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2}").status == 200;
  }));
  EXPECT_NE(s.get("/metrics").body.find("mmfp4_http_requests_total{endpoint=\"/v1/completions\",status=\"429\"} "),
            std::string::npos);
}

TEST(ServerErrors, OversizedRequestsAre413And431) {
  TestServer& s = shared();
  {
    HttpClient c("127.0.0.1", s.port());
    c.send_raw("POST /v1/completions HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    expect_error(c.read_response(), 413, "exceeds the limit of 65536 bytes");
    EXPECT_TRUE(c.server_closed(2));
  }
  {
    // A chunked body that keeps coming is cut off at the limit.
    HttpClient c("127.0.0.1", s.port());
    c.send_raw("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "1000\r\n" + std::string(4096, 'a') + "\r\n";
    try {
      for (int i = 0; i < 40; ++i) c.send_raw(chunk);
    } catch (const std::exception&) {
      // the server may close before everything is sent
    }
    expect_error(c.read_response(), 413, "exceeds the limit");
  }
  {
    HttpClient c("127.0.0.1", s.port());
    c.send_raw("GET /health HTTP/1.1\r\nX-Big: " + std::string(5000, 'x') + "\r\n\r\n");
    expect_error(c.read_response(), 431, "exceed 4096 bytes");
  }
  // Expect: 100-continue with a too-large body is refused before the body is sent.
  {
    HttpClient c("127.0.0.1", s.port());
    c.send_raw("POST /v1/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n");
    expect_error(c.read_response(), 413, "exceeds");
  }
}

TEST(ServerErrors, GarbageAndProtocolErrorsAre4xxAndTheServerSurvives) {
  TestServer& s = shared();
  const std::pair<std::string, int> raw[] = {
      {std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11), 400},
      {"HELLO\r\n\r\n", 400},
      {"GET /health HTTP/2.0\r\n\r\n", 505},
      {"GET /health HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400},
      {"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400},
  };
  for (const auto& [bytes, status] : raw) {
    HttpClient c("127.0.0.1", s.port());
    c.send_raw(bytes);
    expect_error(c.read_response(), status);
    EXPECT_TRUE(c.server_closed(2));
  }
  // Random bytes on many connections: every answer is a 4xx/5xx or a close, never a crash.
  std::mt19937_64 rng(11);
  for (int i = 0; i < 30; ++i) {
    std::string junk(size_t(1 + rng() % 2000), '\0');
    for (char& ch : junk) ch = char(rng());
    if (i % 3 == 0) junk = "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(junk.size()) + "\r\n\r\n" + junk;
    HttpClient c("127.0.0.1", s.port(), 5);
    try {
      c.send_raw(junk);
      const auto r = c.read_response();
      EXPECT_GE(r.status, 400);
    } catch (const std::exception&) {
      // closed without an answer: acceptable for bytes that never form a request line
    }
  }
  EXPECT_EQ(s.get("/health").status, 200);
}

TEST(ServerErrors, SlowAndIdleClientsAreCutOff) {
  TestServer& s = shared();  // request timeout 0.5 s, idle timeout 0.5 s
  {
    // Slowloris: a head that never ends gets 408 once the request timeout passes, however it trickles in.
    HttpClient c("127.0.0.1", s.port());
    const double t0 = now_seconds();
    c.send_raw("POST /v1/completions HTTP/1.1\r\n");
    try {
      for (int i = 0; i < 20; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        c.send_raw("X-A: b\r\n");
      }
    } catch (const std::exception&) {
    }
    expect_error(c.read_response(), 408, "did not arrive");
    EXPECT_LT(now_seconds() - t0, 3.0);
  }
  {
    // A body that stops short.
    HttpClient c("127.0.0.1", s.port());
    c.send_raw("POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"prompt\"");
    expect_error(c.read_response(), 408, "did not arrive");
  }
  {
    // An idle keep-alive connection is closed quietly.
    HttpClient c("127.0.0.1", s.port());
    EXPECT_EQ(c.request("GET", "/health").status, 200);
    EXPECT_TRUE(c.server_closed(3));
  }
}

TEST(ServerErrors, TooManyConnectionsAre503) {
  ServerOptions so;
  so.http.max_connections = 2;
  TestServer s(so);
  HttpClient a("127.0.0.1", s.port()), b("127.0.0.1", s.port()), c("127.0.0.1", s.port());
  EXPECT_EQ(a.request("GET", "/health").status, 200);
  EXPECT_EQ(b.request("GET", "/health").status, 200);
  c.connect();
  expect_error(c.read_response(), 503, "too many connections");
  a.close();
  EXPECT_TRUE(TestServer::eventually([&] { return s.server->open_connections() < 2; }));
  HttpClient d("127.0.0.1", s.port());
  EXPECT_EQ(d.request("GET", "/health").status, 200);
}

}  // namespace
}  // namespace mmfp4::server::testing
