// The engine under concurrency: every request of a continuously batched mix produces exactly the ids it produces
// alone (greedy), whatever the prompt lengths and arrival times; preemption (a KV pool too small for everyone)
// and prefix caching do not change outputs; cancellation, queue limits, stop strings and bad requests behave.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "core/error.h"
#include "mmfp4/engine.h"

namespace mmfp4 {
namespace {

std::string model_dir() { return std::string(MMFP4_SHARED_DIR) + "/models/tiny-qwen3-mmfp4"; }

EngineOptions opts(int64_t max_batch = 8, int64_t kv_blocks = 0, int64_t batch_tokens = 64) {
  EngineOptions o;
  o.model_dir = model_dir();
  o.device = "cpu";
  o.max_batch = max_batch;
  o.max_context = 256;
  o.kv_blocks = kv_blocks;
  o.max_batch_tokens = batch_tokens;
  return o;
}

std::vector<int32_t> random_prompt(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(1, 8000);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Request req(std::vector<int32_t> prompt, int64_t n) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.ignore_eos = true;
  return r;
}

// Runs the requests concurrently from threads that start at staggered times.
std::vector<Result> run_concurrently(Engine& e, const std::vector<Request>& rs) {
  std::vector<Result> out(rs.size());
  std::vector<std::thread> th;
  for (size_t i = 0; i < rs.size(); ++i)
    th.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(7 * (i % 5)));
      out[i] = e.generate(rs[i]);
    });
  for (auto& t : th) t.join();
  return out;
}

TEST(Engine, ConcurrentRequestsEqualSingles) {
  std::vector<Request> rs;
  const size_t lens[] = {1, 3, 4, 5, 17, 40, 90, 2, 64, 9};
  for (size_t i = 0; i < std::size(lens); ++i) rs.push_back(req(random_prompt(lens[i], i + 1), 12 + int64_t(i % 3)));
  std::vector<std::vector<int32_t>> alone;
  {
    auto e = Engine::open(opts(1));
    for (const auto& r : rs) alone.push_back(e->generate(r).ids);
  }
  auto e = Engine::open(opts(8));
  auto together = run_concurrently(*e, rs);
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(together[i].ids, alone[i]) << "request " << i;
    EXPECT_EQ(together[i].reason, FinishReason::Length);
  }
}

TEST(Engine, PreemptionDoesNotChangeOutputs) {
  // 16 context-blocks' worth of pool for 6 sequences that each need up to 8 blocks: the scheduler must preempt.
  std::vector<Request> rs;
  for (size_t i = 0; i < 6; ++i) rs.push_back(req(random_prompt(60 + 10 * i, 100 + i), 40));
  std::vector<std::vector<int32_t>> alone;
  {
    auto e = Engine::open(opts(1));
    for (const auto& r : rs) alone.push_back(e->generate(r).ids);
  }
  EngineOptions o = opts(6, 16);
  o.prefix_caching = false;
  auto e = Engine::open(o);
  auto together = run_concurrently(*e, rs);
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(together[i].ids, alone[i]) << "request " << i;
  EXPECT_GT(e->stats().preemptions_total, 0);
}

TEST(Engine, PrefixCacheReusesBlocksWithoutChangingOutput) {
  auto e = Engine::open(opts(4));
  Request r = req(random_prompt(70, 9), 10);
  Result a = e->generate(r);
  Result b = e->generate(r);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.cached_prompt_tokens, 0);
  EXPECT_EQ(b.cached_prompt_tokens, 64);  // 4 full blocks of 16; the last token is always recomputed
  // A longer prompt sharing the prefix reuses it too, and matches a cold engine.
  Request longer = r;
  longer.prompt.insert(longer.prompt.end(), {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17});
  Result c = e->generate(longer);
  EXPECT_EQ(c.cached_prompt_tokens, 64);
  EngineOptions o = opts(1);
  o.prefix_caching = false;
  EXPECT_EQ(Engine::open(o)->generate(longer).ids, c.ids);
}

TEST(Engine, SamplingWithASeedIsReproducible) {
  auto e = Engine::open(opts(4));
  Request r = req(random_prompt(8, 3), 20);
  r.sampling.temperature = 0.9f;
  r.sampling.top_p = 0.95f;
  r.sampling.top_k = 50;
  r.sampling.seed = 1234;
  std::vector<Request> rs(4, r);
  rs[1].sampling.seed = 99;
  auto out = run_concurrently(*e, rs);
  EXPECT_EQ(out[0].ids, out[2].ids);
  EXPECT_EQ(out[0].ids, out[3].ids);
  EXPECT_NE(out[0].ids, out[1].ids);
}

TEST(Engine, CancelEndsARunningRequest) {
  auto e = Engine::open(opts(2));
  std::atomic<int> tokens{0};
  std::atomic<bool> done{false};
  FinishReason reason = FinishReason::None;
  Request r = req(random_prompt(5, 4), 200);
  const uint64_t id = e->submit(r, [&](const TokenEvent& ev) {
    if (ev.token >= 0) ++tokens;
    if (ev.finished) {
      reason = ev.reason;
      done = true;
    }
  });
  while (tokens < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  e->cancel(id);
  while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(reason, FinishReason::Cancelled);
  EXPECT_LT(tokens.load(), 200);
  // The engine still serves requests afterwards and the pool is whole again.
  EXPECT_EQ(e->generate(req(random_prompt(5, 4), 3)).ids.size(), 3u);
}

TEST(Engine, BadRequestsAreRejectedWithClearErrors) {
  auto e = Engine::open(opts(2));
  auto msg = [&](Request r) {
    try {
      e->submit(r, nullptr);
    } catch (const Error& ex) {
      return std::string(ex.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(req({}, 4)).find("empty"), std::string::npos);
  EXPECT_NE(msg(req({1, 99999}, 4)).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(msg(req(random_prompt(200, 1), 100)).find("exceeds the context"), std::string::npos);
  Request r = req({1, 2}, 4);
  r.sampling.top_p = 0;
  EXPECT_NE(msg(r).find("top_p"), std::string::npos);
}

TEST(Engine, QueueFullIsReported) {
  EngineOptions o = opts(1);
  o.max_queue = 2;
  auto e = Engine::open(o);
  int rejected = 0;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 20; ++i) {
    try {
      ids.push_back(e->submit(req(random_prompt(30, i), 50), nullptr));
    } catch (const QueueFull&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  for (uint64_t id : ids) e->cancel(id);
}

TEST(Engine, StopStringsEndGenerationBeforeTheMatch) {
  auto e = Engine::open(opts(1));
  Request r;
  r.prompt = e->tokenize("The quick brown fox");
  r.max_new_tokens = 40;
  Result full = e->generate(r);
  ASSERT_GT(full.text.size(), 6u);
  const std::string stop = full.text.substr(3, 3);
  r.stop = {stop};
  Result cut = e->generate(r);
  EXPECT_EQ(cut.reason, FinishReason::Stop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

TEST(Engine, StreamedTextEqualsDetokenizedIds) {
  auto e = Engine::open(opts(1));
  Request r;
  r.prompt = e->tokenize("def fibonacci(n):\n    ");
  r.max_new_tokens = 32;
  std::string streamed;
  Result res = e->generate(r, [&](const TokenEvent& ev) { streamed += ev.text; });
  EXPECT_EQ(streamed, res.text);
  EXPECT_EQ(res.text, e->detokenize(res.ids));
}

}  // namespace
}  // namespace mmfp4

namespace mmfp4 {
namespace {

TEST(Engine, ZeroNewTokensGeneratesNothing) {
  auto e = Engine::open(opts(1));
  Result r = e->generate(req(random_prompt(5, 1), 0));
  EXPECT_TRUE(r.ids.empty());
  EXPECT_EQ(r.reason, FinishReason::Length);
}

TEST(Engine, ScoreGivesEveryPositionAndMatchesGeneration) {
  auto e = Engine::open(opts(2));
  const auto a = random_prompt(9, 1), b = random_prompt(3, 2);
  const int64_t V = 8192;
  std::vector<float> both = e->score({a, b});
  ASSERT_EQ(both.size(), (a.size() + b.size()) * size_t(V));
  std::vector<float> only_b = e->score({b});
  for (size_t i = 0; i < only_b.size(); ++i) ASSERT_EQ(only_b[i], both[a.size() * size_t(V) + i]);
  // The greedy continuation of `a` is the argmax of its last row.
  const float* last = both.data() + (a.size() - 1) * size_t(V);
  const int32_t next = int32_t(std::max_element(last, last + V) - last);
  EXPECT_EQ(e->generate(req(a, 1)).ids.at(0), next);
  EXPECT_THROW(e->score({{1, 2, 999999}}), Error);
  EXPECT_THROW(e->score({{}}), Error);
}

}  // namespace
}  // namespace mmfp4
