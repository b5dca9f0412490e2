#include "core/thread_pool.h"

#include <immintrin.h>

#include <cstdlib>
#include <memory>
#include <mutex>

#include "core/env.h"

namespace mmfp4 {

namespace {
constexpr int kSpinIterations = 20000;  // ~tens of microseconds of pause before sleeping

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

std::mutex g_pool_mu;
std::unique_ptr<ThreadPool> g_pool;
int g_requested = 0;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

// Takes the next task of job `gen`; false when the job has no task left or has been replaced by a later one.
bool ThreadPool::claim(uint32_t gen, int64_t* task) {
  uint64_t v = next_.load(std::memory_order_acquire);
  while (true) {
    const uint32_t idx = uint32_t(v);
    if (uint32_t(v >> 32) != gen || (idx & kPerThread) || int64_t(idx) >= n_tasks_.load(std::memory_order_relaxed))
      return false;
    if (next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      *task = int64_t(idx);
      return true;
    }
  }
}

void ThreadPool::finish_task() {
  if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_tasks_.load(std::memory_order_relaxed))
    done_.notify_one();
}

// Thread `id`'s part of job `gen` (nothing if that job is already gone).
void ThreadPool::run_job(uint32_t gen, int id) {
  const uint64_t v = next_.load(std::memory_order_acquire);
  if (uint32_t(v >> 32) != gen) return;
  if (uint32_t(v) & kPerThread) {
    // Task `id` is this thread's; the job cannot finish (and change) before it has run.
    tramp_(ctx_, id, id);
    finish_task();
    return;
  }
  int64_t t;
  while (claim(gen, &t)) {
    tramp_(ctx_, t, id);
    finish_task();
  }
}

void ThreadPool::worker_loop(int id) {
  uint32_t seen = 0;
  while (true) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < kSpinIterations; ++i) {
      cpu_relax();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    run_job(g, id);
  }
}

void ThreadPool::dispatch(int64_t n_tasks, Trampoline tramp, void* ctx, bool per_thread) {
  std::lock_guard<std::mutex> lock(dispatch_mu_);
  // Every task of the previous job is done. Block claims first: a worker still holding the previous generation
  // then fails its compare-exchange instead of taking a task of the new job under the old one's numbering.
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  next_.store(uint64_t(gen) << 32 | kBlocked, std::memory_order_release);
  tramp_ = tramp;
  ctx_ = ctx;
  n_tasks_.store(n_tasks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  next_.store(uint64_t(gen) << 32 | (per_thread ? kPerThread : 0u), std::memory_order_release);
  generation_.store(gen, std::memory_order_release);  // wakes the workers
  generation_.notify_all();
  run_job(gen, 0);
  int64_t d = done_.load(std::memory_order_acquire);
  for (int i = 0; d != n_tasks && i < kSpinIterations; ++i) {
    cpu_relax();
    d = done_.load(std::memory_order_acquire);
  }
  while (d != n_tasks) {
    done_.wait(d, std::memory_order_acquire);
    d = done_.load(std::memory_order_acquire);
  }
}

int ThreadPool::default_threads() {
  if (const auto n = env_int("MMFP4_THREADS", 1, 4096)) return int(*n);
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? int(hc) : 1;
}

ThreadPool& ThreadPool::global() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(g_requested > 0 ? g_requested : default_threads());
  return *g_pool;
}

void ThreadPool::set_global_threads(int n) {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  g_requested = n;
  if (g_pool && g_pool->size() != (n > 0 ? n : default_threads())) g_pool.reset();
}

}  // namespace mmfp4
