#include "core/thread_pool.h"

#include <immintrin.h>

#include <cstdlib>
#include <memory>
#include <mutex>

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

void ThreadPool::work(int id) {
  while (true) {
    int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= n_tasks_) break;
    tramp_(ctx_, t, id);
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
    work(id);
    if (finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_threads_ - 1) finished_.notify_one();
  }
}

void ThreadPool::dispatch(int64_t n_tasks, Trampoline tramp, void* ctx) {
  tramp_ = tramp;
  ctx_ = ctx;
  n_tasks_ = n_tasks;
  next_.store(0, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);  // publishes the job (release)
  generation_.notify_all();
  work(0);
  const int want = n_threads_ - 1;
  int f = finished_.load(std::memory_order_acquire);
  for (int i = 0; f != want && i < kSpinIterations; ++i) {
    cpu_relax();
    f = finished_.load(std::memory_order_acquire);
  }
  while (f != want) {
    finished_.wait(f, std::memory_order_acquire);
    f = finished_.load(std::memory_order_acquire);
  }
}

int ThreadPool::default_threads() {
  if (const char* env = std::getenv("MMFP4_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
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
