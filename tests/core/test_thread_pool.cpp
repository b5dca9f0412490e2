#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

using namespace mmfp4;

TEST(ThreadPool, RunsEveryTaskOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (auto& h : hits) h = 0;
      pool.run(n, [&](int64_t t, int th) {
        EXPECT_LT(th, threads);
        hits[size_t(t)]++;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, ParallelForCoversRangeAligned) {
  ThreadPool pool(4);
  for (int64_t n : {1, 5, 64, 1000, 4097}) {
    std::vector<int> cover(size_t(n), 0);
    pool.parallel_for(n, 16, [&](int64_t b, int64_t e, int) {
      EXPECT_EQ(b % 16, 0);
      for (int64_t i = b; i < e; ++i) cover[size_t(i)]++;
    });
    for (int c : cover) EXPECT_EQ(c, 1);
  }
}

TEST(ThreadPool, ManySmallJobs) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int i = 0; i < 20000; ++i) pool.run(3, [&](int64_t t, int) { sum += t; });
  EXPECT_EQ(sum.load(), 20000 * 3);
}
