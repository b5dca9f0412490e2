// Continuous batching seen from HTTP: requests sent concurrently, with mixed prompt lengths and arrival times,
// some streamed, each produce exactly the ids the engine gives them alone (greedy), also when the KV pool is
// small enough that the scheduler must preempt. And the same mix in-process through Engine::submit, as the
// server uses it.
#include <atomic>

#include "server/sse.h"
#include "server_test_util.h"

namespace mmfp4::server::testing {
namespace {

struct Job {
  std::vector<int32_t> prompt;
  int64_t max_tokens;
  bool stream;
  int delay_ms;
};

std::vector<Job> mixed_jobs(size_t n, uint64_t seed) {
  const size_t lens[] = {1, 2, 5, 17, 40, 90, 3, 64, 9, 130, 7, 33};
  std::vector<Job> jobs;
  for (size_t i = 0; i < n; ++i)
    jobs.push_back({prompt_ids(lens[i % std::size(lens)], seed + i), int64_t(8 + (i * 7) % 25), i % 3 == 1,
                    int((i * 13) % 40)});
  return jobs;
}

std::vector<std::vector<int32_t>> solo(const std::vector<Job>& jobs) {
  auto e = Engine::open(tiny_options(1));
  std::vector<std::vector<int32_t>> out;
  for (const auto& j : jobs) {
    Request r;
    r.prompt = j.prompt;
    r.max_new_tokens = j.max_tokens;
    r.ignore_eos = true;
    out.push_back(e->generate(r).ids);
  }
  return out;
}

// Sends each job on its own connection and thread after its delay; returns the ids each response carried.
std::vector<std::vector<int32_t>> over_http(const TestServer& s, const std::vector<Job>& jobs) {
  std::vector<std::vector<int32_t>> out(jobs.size());
  std::vector<std::thread> th;
  for (size_t i = 0; i < jobs.size(); ++i)
    th.emplace_back([&, i] {
      const Job& j = jobs[i];
      std::this_thread::sleep_for(std::chrono::milliseconds(j.delay_ms));
      const std::string body = "{\"prompt\": " + ids_json(j.prompt) + ", \"max_tokens\": " + std::to_string(j.max_tokens) +
                               ", \"ignore_eos\": true, \"return_token_ids\": true, \"stream\": " +
                               (j.stream ? "true" : "false") + "}";
      auto c = s.client();
      if (!j.stream) {
        const auto r = c->request("POST", "/v1/completions", body);
        if (r.status == 200) out[i] = ids_of(parse_json(r.body)["choices"][0]["token_ids"]);
        return;
      }
      SseSplitter sse;
      c->stream("POST", "/v1/completions", body, {}, [&](std::string_view d) {
        for (const auto& ev : sse.push(d)) {
          if (ev == "[DONE]") continue;
          for (int32_t id : ids_of(parse_json(ev)["choices"][0]["token_ids"])) out[i].push_back(id);
        }
        return true;
      });
    });
  for (auto& t : th) t.join();
  return out;
}

TEST(ServerBatching, ConcurrentHttpRequestsEqualSingles) {
  const auto jobs = mixed_jobs(16, 100);
  const auto alone = solo(jobs);
  TestServer s({}, tiny_options(8));
  const auto together = over_http(s, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "request " << i;
  EXPECT_GT(s.engine->stats().steps_total, 0);
}

TEST(ServerBatching, PreemptionUnderASmallKvPoolKeepsOutputs) {
  const auto jobs = mixed_jobs(12, 200);
  const auto alone = solo(jobs);
  EngineOptions eo = tiny_options(6);
  eo.kv_blocks = 18;  // a full 256-token context is 16 blocks: the batch cannot all fit at once
  eo.prefix_caching = false;
  TestServer s({}, eo);
  const auto together = over_http(s, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "request " << i;
}

TEST(ServerBatching, ConcurrentSubmitsInProcessEqualSingles) {
  const auto jobs = mixed_jobs(12, 300);
  const auto alone = solo(jobs);
  auto e = Engine::open(tiny_options(8));
  std::vector<std::vector<int32_t>> got(jobs.size());
  std::atomic<int> done{0};
  for (size_t i = 0; i < jobs.size(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(jobs[i].delay_ms / 4));
    Request r;
    r.prompt = jobs[i].prompt;
    r.max_new_tokens = jobs[i].max_tokens;
    r.ignore_eos = true;
    e->submit(r, [&, i](const TokenEvent& ev) {  // the engine thread: only this request's slot is touched
      if (ev.token >= 0) got[i].push_back(ev.token);
      if (ev.finished) ++done;
    });
  }
  ASSERT_TRUE(TestServer::eventually([&] { return done == int(jobs.size()); }, 30));
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(got[i], alone[i]) << "request " << i;
}

}  // namespace
}  // namespace mmfp4::server::testing
