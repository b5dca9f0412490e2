// The OpenAI API over loopback against an in-process server: response shapes, prompts as text or ids, chat,
// logprobs, n, stop strings, streaming (SSE framing, include_usage), /health while loading, /v1/models,
// /metrics, keep-alive and pipelining, and cancellation when a client disconnects.
#include <sys/socket.h>

#include "server/sse.h"
#include "server_test_util.h"

namespace mmfp4::server::testing {
namespace {

// One server for the tests that do not need special options (opening the model once keeps the suite fast).
TestServer& shared() {
  static TestServer* s = new TestServer();
  return *s;
}

std::vector<int32_t> solo_ids(Engine& e, const std::vector<int32_t>& prompt, int64_t n) {
  Request r;
  r.prompt = prompt;
  r.max_new_tokens = n;
  r.ignore_eos = true;
  return e.generate(r).ids;
}

struct Streamed {
  HttpClientResponse head;
  std::vector<std::string> events;  // data payloads, "[DONE]" included
  std::string raw;
};

Streamed stream(const TestServer& s, const std::string& path, const std::string& body) {
  Streamed out;
  SseSplitter sse;
  out.head = s.client()->stream("POST", path, body, {}, [&](std::string_view d) {
    out.raw += d;
    for (auto& e : sse.push(d)) out.events.push_back(std::move(e));
    return true;
  });
  return out;
}

TEST(ServerApi, CompletionWithTokenIdsEqualsTheEngineAlone) {
  TestServer& s = shared();
  const auto prompt = prompt_ids(20, 1);
  const auto r = s.post("/v1/completions", "{\"model\": \"tiny-qwen3-mmfp4\", \"prompt\": " + ids_json(prompt) +
                                               ", \"max_tokens\": 12, \"ignore_eos\": true, \"return_token_ids\": true}");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_NE(r.header("content-type"), nullptr);
  EXPECT_EQ(*r.header("content-type"), "application/json");
  const json::Value v = parse_json(r.body);
  EXPECT_EQ(v["object"].as_string(), "text_completion");
  EXPECT_EQ(v["id"].as_string().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(v["model"].as_string(), "tiny-qwen3-mmfp4");
  EXPECT_TRUE(v["created"].is_int());
  ASSERT_EQ(v["choices"].size(), 1u);
  const json::Value& c = v["choices"][0];
  EXPECT_EQ(c["index"].as_int(), 0);
  EXPECT_EQ(c["finish_reason"].as_string(), "length");
  EXPECT_TRUE(c["logprobs"].is_null());
  const auto ids = ids_of(c["token_ids"]);
  EXPECT_EQ(ids, solo_ids(*s.engine, prompt, 12));
  EXPECT_EQ(c["text"].as_string(), s.engine->detokenize(ids));
  EXPECT_EQ(ids_of(c["prompt_token_ids"]), prompt);
  EXPECT_EQ(v["usage"]["prompt_tokens"].as_int(), 20);
  EXPECT_EQ(v["usage"]["completion_tokens"].as_int(), 12);
  EXPECT_EQ(v["usage"]["total_tokens"].as_int(), 32);
}

TEST(ServerApi, PromptFormsAgree) {
  TestServer& s = shared();
  const auto ids = s.engine->tokenize("The quick brown fox");
  auto text_of = [&](const std::string& prompt_json) {
    const auto r = s.post("/v1/completions", "{\"prompt\": " + prompt_json + ", \"max_tokens\": 8}");
    EXPECT_EQ(r.status, 200) << r.body;
    return parse_json(r.body)["choices"][0]["text"].as_string();
  };
  const std::string a = text_of("\"The quick brown fox\"");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(text_of("[\"The quick brown fox\"]"), a);
  EXPECT_EQ(text_of(ids_json(ids)), a);
  EXPECT_EQ(text_of("[" + ids_json(ids) + "]"), a);
  // echo puts the prompt in front.
  const auto r = s.post("/v1/completions", "{\"prompt\": \"The quick brown fox\", \"max_tokens\": 8, \"echo\": true}");
  EXPECT_EQ(parse_json(r.body)["choices"][0]["text"].as_string(), "The quick brown fox" + a);
}

TEST(ServerApi, BatchedPromptsAndNGiveIndexedChoices) {
  TestServer& s = shared();
  const auto p0 = prompt_ids(5, 2), p1 = prompt_ids(9, 3);
  const auto r = s.post("/v1/completions", "{\"prompt\": [" + ids_json(p0) + "," + ids_json(p1) +
                                               "], \"n\": 2, \"max_tokens\": 6, \"ignore_eos\": true, "
                                               "\"return_token_ids\": true}");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::Value v = parse_json(r.body);
  ASSERT_EQ(v["choices"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(v["choices"][i]["index"].as_int(), int64_t(i));
    EXPECT_EQ(ids_of(v["choices"][i]["token_ids"]), solo_ids(*s.engine, i < 2 ? p0 : p1, 6)) << i;  // greedy
  }
  EXPECT_EQ(v["usage"]["prompt_tokens"].as_int(), 14);  // each prompt counted once
  EXPECT_EQ(v["usage"]["completion_tokens"].as_int(), 24);
}

TEST(ServerApi, SeededSamplingIsReproducibleAndChoicesDiffer) {
  TestServer& s = shared();
  const std::string body = "{\"prompt\": " + ids_json(prompt_ids(6, 4)) +
                           ", \"max_tokens\": 16, \"temperature\": 1.0, \"top_p\": 0.95, \"top_k\": 50, "
                           "\"seed\": 1234, \"n\": 2, \"ignore_eos\": true, \"return_token_ids\": true}";
  const json::Value a = parse_json(s.post("/v1/completions", body).body), b = parse_json(s.post("/v1/completions", body).body);
  EXPECT_EQ(ids_of(a["choices"][0]["token_ids"]), ids_of(b["choices"][0]["token_ids"]));
  EXPECT_EQ(ids_of(a["choices"][1]["token_ids"]), ids_of(b["choices"][1]["token_ids"]));
  EXPECT_NE(ids_of(a["choices"][0]["token_ids"]), ids_of(a["choices"][1]["token_ids"]));
}

TEST(ServerApi, StopStringsEndTheText) {
  TestServer& s = shared();
  const auto full = parse_json(s.post("/v1/completions", "{\"prompt\": \"The quick brown fox\", \"max_tokens\": 30}").body);
  const std::string text = full["choices"][0]["text"].as_string();
  ASSERT_GT(text.size(), 8u);
  const std::string stop = text.substr(4, 3);
  const auto cut = parse_json(s.post("/v1/completions", "{\"prompt\": \"The quick brown fox\", \"max_tokens\": 30, "
                                                         "\"stop\": [\"zzzz\", " + json::dump(json::Value(stop)) + "]}").body);
  EXPECT_EQ(cut["choices"][0]["text"].as_string(), text.substr(0, text.find(stop)));
  EXPECT_EQ(cut["choices"][0]["finish_reason"].as_string(), "stop");
}

TEST(ServerApi, ChatCompletionAppliesTheTemplate) {
  TestServer& s = shared();
  const std::string messages = R"([{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": [{"type": "text", "text": "Hello"}]}])";
  const auto r = s.post("/v1/chat/completions",
                        "{\"messages\": " + messages + ", \"max_tokens\": 10, \"logprobs\": true, \"return_token_ids\": true}");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::Value v = parse_json(r.body);
  EXPECT_EQ(v["object"].as_string(), "chat.completion");
  EXPECT_EQ(v["id"].as_string().rfind("chatcmpl-", 0), 0u);
  const json::Value& c = v["choices"][0];
  EXPECT_EQ(c["message"]["role"].as_string(), "assistant");
  // The prompt is the ChatML rendering, tokenized without extra special tokens.
  const auto expected_prompt = s.engine->tokenize(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", false);
  EXPECT_EQ(ids_of(c["prompt_token_ids"]), expected_prompt);
  EXPECT_EQ(v["usage"]["prompt_tokens"].as_int(), int64_t(expected_prompt.size()));
  Request solo;
  solo.prompt = expected_prompt;
  solo.max_new_tokens = 10;
  const Result res = s.engine->generate(solo);
  EXPECT_EQ(c["message"]["content"].as_string(), res.text);
  // logprobs: one entry per generated token, with token text, logprob <= 0 and bytes.
  const json::Value& lp = c["logprobs"]["content"];
  ASSERT_EQ(lp.size(), res.ids.size());
  for (size_t i = 0; i < lp.size(); ++i) {
    EXPECT_LE(lp[i]["logprob"].as_double(), 0.0);
    EXPECT_TRUE(lp[i]["token"].is_string());
    EXPECT_TRUE(lp[i]["bytes"].is_array());
    EXPECT_TRUE(lp[i]["top_logprobs"].is_array());
  }
}

TEST(ServerApi, CompletionLogprobsZeroGivesTheSampledTokens) {
  TestServer& s = shared();
  const auto r = s.post("/v1/completions", "{\"prompt\": \"Hello\", \"max_tokens\": 5, \"logprobs\": 0, \"ignore_eos\": true}");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::Value lp = parse_json(r.body)["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);
  ASSERT_EQ(lp["token_logprobs"].size(), 5u);
  ASSERT_EQ(lp["top_logprobs"].size(), 5u);
  ASSERT_EQ(lp["text_offset"].size(), 5u);
  EXPECT_EQ(lp["text_offset"][0].as_int(), 0);
  EXPECT_EQ(lp["top_logprobs"][0][lp["tokens"][0].as_string()].as_double(), lp["token_logprobs"][0].as_double());
}

// Every event is "data: <json>\n\n", the last one is "data: [DONE]", the text adds up to the non-streamed text,
// only the last chunk of a choice has a finish_reason.
TEST(ServerApi, StreamedCompletionIsFramedAsServerSentEvents) {
  TestServer& s = shared();
  const auto prompt = prompt_ids(12, 5);
  const std::string body = "{\"prompt\": " + ids_json(prompt) + ", \"max_tokens\": 24, \"ignore_eos\": true, \"return_token_ids\": true";
  const json::Value whole = parse_json(s.post("/v1/completions", body + "}").body);
  const Streamed st = stream(s, "/v1/completions", body + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}}");
  ASSERT_EQ(st.head.status, 200);
  EXPECT_EQ(st.head.header("content-type")->rfind("text/event-stream", 0), 0u);
  EXPECT_EQ(*st.head.header("transfer-encoding"), "chunked");
  // Framing, byte for byte: every event is one data line and a blank line.
  size_t pos = 0, n_events = 0;
  while (pos < st.raw.size()) {
    ASSERT_EQ(st.raw.compare(pos, 6, "data: "), 0) << st.raw.substr(pos, 40);
    const size_t end = st.raw.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    EXPECT_EQ(st.raw.substr(pos, end - pos).find('\n'), std::string::npos);
    pos = end + 2;
    ++n_events;
  }
  EXPECT_EQ(n_events, st.events.size());
  ASSERT_GE(st.events.size(), 3u);
  EXPECT_EQ(st.events.back(), "[DONE]");
  std::string text;
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 < st.events.size(); ++i) {
    const json::Value c = parse_json(st.events[i]);
    EXPECT_EQ(c["object"].as_string(), "text_completion");
    EXPECT_TRUE(c.find("usage") && c["usage"].is_null());
    ASSERT_EQ(c["choices"].size(), 1u);
    const json::Value& ch = c["choices"][0];
    text += ch["text"].as_string();
    for (int32_t id : ids_of(ch["token_ids"])) ids.push_back(id);
    const bool last = i + 3 == st.events.size();
    EXPECT_EQ(ch["finish_reason"].is_null(), !last) << st.events[i];
  }
  EXPECT_EQ(text, whole["choices"][0]["text"].as_string());
  EXPECT_EQ(ids, ids_of(whole["choices"][0]["token_ids"]));
  const json::Value usage = parse_json(st.events[st.events.size() - 2]);
  EXPECT_EQ(usage["choices"].size(), 0u);
  EXPECT_EQ(usage["usage"]["completion_tokens"].as_int(), 24);
  EXPECT_EQ(usage["usage"]["prompt_tokens"].as_int(), 12);
}

TEST(ServerApi, StreamedChatStartsWithTheRoleAndEndsWithAFinishReason) {
  TestServer& s = shared();
  const std::string body = R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 12, "n": 2)";
  const json::Value whole = parse_json(s.post("/v1/chat/completions", body + "}").body);
  const Streamed st = stream(s, "/v1/chat/completions", body + ", \"stream\": true}");
  ASSERT_EQ(st.head.status, 200);
  ASSERT_EQ(st.events.back(), "[DONE]");
  std::string text[2];
  bool finished[2] = {false, false}, role[2] = {false, false};
  for (size_t i = 0; i + 1 < st.events.size(); ++i) {
    const json::Value c = parse_json(st.events[i]);
    EXPECT_EQ(c["object"].as_string(), "chat.completion.chunk");
    EXPECT_FALSE(c.contains("usage"));
    for (const auto& ch : c["choices"].as_array()) {
      const int64_t k = ch["index"].as_int();
      ASSERT_TRUE(k == 0 || k == 1);
      EXPECT_FALSE(finished[k]) << "chunk after the finish reason";
      if (ch["delta"].contains("role")) {
        EXPECT_FALSE(role[k]);
        EXPECT_EQ(ch["delta"]["role"].as_string(), "assistant");
        role[k] = true;
      }
      EXPECT_TRUE(role[k]) << "content before the role";
      if (ch["delta"].contains("content")) text[k] += ch["delta"]["content"].as_string();
      if (!ch["finish_reason"].is_null()) finished[k] = true;
    }
  }
  for (int k = 0; k < 2; ++k) {
    EXPECT_TRUE(finished[k]);
    EXPECT_EQ(text[k], whole["choices"][k]["message"]["content"].as_string());
  }
}

TEST(ServerApi, HttpOneZeroStreamsUntilClose) {
  TestServer& s = shared();
  HttpClient c("127.0.0.1", s.port());
  const std::string body = "{\"prompt\": \"Hi\", \"max_tokens\": 4, \"stream\": true}";
  c.send_raw("POST /v1/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  const auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("transfer-encoding"), nullptr);
  EXPECT_NE(r.body.find("data: [DONE]\n\n"), std::string::npos);
}

TEST(ServerApi, ModelsHealthAndMetrics) {
  TestServer& s = shared();
  const auto m = s.get("/v1/models");
  ASSERT_EQ(m.status, 200);
  const json::Value v = parse_json(m.body);
  EXPECT_EQ(v["object"].as_string(), "list");
  EXPECT_EQ(v["data"][0]["id"].as_string(), "tiny-qwen3-mmfp4");
  EXPECT_EQ(v["data"][0]["object"].as_string(), "model");
  EXPECT_EQ(s.get("/v1/models/tiny-qwen3-mmfp4").status, 200);
  expect_error(s.get("/v1/models/nope"), 404, "does not exist");
  const auto h = s.get("/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(parse_json(h.body)["status"].as_string(), "ok");
  s.post("/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": 2}");
  const auto mt = s.get("/metrics");
  ASSERT_EQ(mt.status, 200);
  EXPECT_EQ(mt.header("content-type")->rfind("text/plain", 0), 0u);
  for (const char* name :
       {"mmfp4_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"}", "mmfp4_prompt_tokens_total",
        "mmfp4_generation_tokens_total", "mmfp4_requests_waiting", "mmfp4_requests_running", "mmfp4_kv_blocks_used",
        "mmfp4_kv_blocks_total", "mmfp4_preemptions_total", "mmfp4_requests_finished_total{reason=\"cancelled\"}",
        "mmfp4_time_to_first_token_seconds_bucket{le=\"0.1\"}", "mmfp4_time_to_first_token_seconds_count",
        "mmfp4_request_duration_seconds_bucket{le=\"+Inf\"}", "mmfp4_request_duration_seconds_sum",
        "# TYPE mmfp4_time_to_first_token_seconds histogram"})
    EXPECT_NE(mt.body.find(name), std::string::npos) << name;
}

TEST(ServerApi, HealthIs503WhileLoadingAndTheLoadCanFail) {
  TestServer s({}, tiny_options(), /*load=*/false);
  expect_error(s.get("/health"), 503, "loading");
  expect_error(s.post("/v1/completions", "{\"prompt\": \"Hi\"}"), 503, "loading");
  const auto m = s.get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("mmfp4_model_loaded 0"), std::string::npos);
  s.server->set_engine(Engine::open(tiny_options(2)));
  EXPECT_EQ(s.get("/health").status, 200);

  TestServer bad({}, tiny_options(), false);
  EngineOptions eo = tiny_options();
  eo.model_dir = "/nonexistent/model";
  bad.server->load(eo);
  EXPECT_EQ(bad.server->wait_loaded(10), OpenAIServer::State::Failed);
  expect_error(bad.get("/health"), 503, "failed to load");
}

TEST(ServerApi, KeepAliveAndPipelining) {
  TestServer& s = shared();
  HttpClient c("127.0.0.1", s.port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.request("GET", "/health").status, 200);
  EXPECT_TRUE(c.connected());
  const std::string body = "{\"prompt\": [1, 2, 3], \"max_tokens\": 3}";
  const std::string post = "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  c.send_raw(post + "GET /health HTTP/1.1\r\n\r\n" + post);
  EXPECT_EQ(parse_json(c.read_response().body)["object"].as_string(), "text_completion");
  EXPECT_EQ(parse_json(c.read_response().body)["status"].as_string(), "ok");
  EXPECT_EQ(parse_json(c.read_response().body)["object"].as_string(), "text_completion");
  // Expect: 100-continue gets its interim answer, then the response.
  c.send_raw("POST /v1/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  c.send_raw(body);
  EXPECT_EQ(c.read_response().status, 200);
  // Connection: close is honoured.
  c.send_raw("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(*c.read_response().header("connection"), "close");
  EXPECT_TRUE(c.server_closed(2));
}

// A client that goes away cancels its request: streaming (closes after a few chunks) and not streaming (closes
// while waiting). The engine ends them as Cancelled and frees their KV blocks.
TEST(ServerApi, ClientDisconnectCancelsTheRequest) {
  // A long context so the requests cannot finish before the client leaves.
  TestServer s({}, tiny_options(2, 4096));
  const auto cancelled = [&] { return s.server->metrics().finished(FinishReason::Cancelled); };
  const std::string body = "{\"prompt\": [1, 2, 3], \"max_tokens\": 4000, \"ignore_eos\": true";
  {
    int chunks = 0;
    auto c = s.client();
    c->stream("POST", "/v1/completions", body + ", \"stream\": true}", {}, [&](std::string_view) { return ++chunks < 4; });
    EXPECT_FALSE(c->connected());
  }
  EXPECT_TRUE(TestServer::eventually([&] { return cancelled() == 1; })) << cancelled();
  {
    HttpClient c("127.0.0.1", s.port());
    const std::string b = body + "}";
    c.send_raw("POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b);
    ASSERT_TRUE(TestServer::eventually([&] { return s.engine->stats().requests_running == 1; }));
    c.close();
  }
  EXPECT_TRUE(TestServer::eventually([&] { return cancelled() == 2; })) << cancelled();
  EXPECT_TRUE(TestServer::eventually([&] { return s.engine->stats().requests_running == 0; }));
  const std::string metrics = s.get("/metrics").body;
  EXPECT_NE(metrics.find("mmfp4_requests_finished_total{reason=\"cancelled\"} 2"), std::string::npos);
  EXPECT_NE(metrics.find("mmfp4_http_requests_total{endpoint=\"/v1/completions\",status=\"499\"} 1"), std::string::npos)
      << metrics;
  EXPECT_EQ(s.engine->stats().generated_tokens_total < 8000, true);
}

// stop() while requests stream: every connection closes, the requests end, nothing hangs.
TEST(ServerApi, StopWhileStreamingEndsEverything) {
  auto s = std::make_unique<TestServer>(ServerOptions{}, tiny_options(2, 4096));
  std::vector<std::thread> clients;
  std::atomic<int> started{0};
  for (int i = 0; i < 3; ++i)
    clients.emplace_back([&] {
      try {
        s->client()->stream("POST", "/v1/completions", "{\"prompt\": [1, 2], \"max_tokens\": 4000, \"ignore_eos\": true, \"stream\": true}",
                            {}, [&](std::string_view) {
                              ++started;
                              return true;
                            });
      } catch (const std::exception&) {
        // the connection is cut: expected
      }
    });
  ASSERT_TRUE(TestServer::eventually([&] { return started >= 3; }));
  const double t0 = now_seconds();
  s->server->stop();
  EXPECT_LT(now_seconds() - t0, 5.0);
  for (auto& t : clients) t.join();
}

}  // namespace
}  // namespace mmfp4::server::testing
