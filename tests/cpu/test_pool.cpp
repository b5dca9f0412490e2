// The thread pool changes the CPU backend relies on: run() returns when the tasks are done (not when every worker
// has checked in), run_per_thread() runs once on each thread, and callers on several threads take turns.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace mmfp4::testing {
namespace {

TEST(CpuPool, PerThreadRunsOncePerThread) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (auto& h : hits) h = 0;
      pool.run_per_thread([&](int64_t t, int th) {
        EXPECT_EQ(t, th);
        hits[size_t(t)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

// Many short jobs of varying size, mixed with per-thread jobs: every task runs exactly once even when workers wake
// late for a job that is already finished.
TEST(CpuPool, NoTaskRunsTwiceAcrossJobs) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(64);
  for (int rep = 0; rep < 20000; ++rep) {
    const int n = 1 + rep % 13;
    for (auto& h : hits) h = 0;
    if (rep % 7 == 0) {
      pool.run_per_thread([&](int64_t t, int) { hits[size_t(t)]++; });
      for (int i = 0; i < pool.size(); ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "rep " << rep;
    } else {
      pool.run(n, [&](int64_t t, int) { hits[size_t(t)]++; });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "rep " << rep << " task " << i;
    }
  }
}

TEST(CpuPool, CallersOnSeveralThreadsTakeTurns) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) pool.run(4, [&](int64_t t, int) { sum += t + 1; });
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(sum.load(), 3 * 2000 * 10);
}

}  // namespace
}  // namespace mmfp4::testing
