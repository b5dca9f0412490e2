// A persistent pool of worker threads for the CPU kernels. The calling thread takes part in every job, so a pool of
// n threads starts n - 1 workers. Jobs are dispatched without heap allocation (a function pointer and a context),
// workers spin briefly before sleeping so the hundreds of small parallel regions of a decode step do not pay a
// futex wake-up each, and tasks are handed out dynamically from an atomic counter.
//
// run() returns as soon as every task is done: the caller never waits for a worker that took no task, so a worker
// that the OS has descheduled (other processes on the cores) costs nothing but its share of the work. The task
// counter carries the job's generation in its high half, so a worker that wakes late can never take a task of a
// later job by mistake: its claim fails and it goes back to waiting.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace mmfp4 {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task, thread) for every task in [0, n_tasks), thread in [0, size()). Blocks until all are done.
  // Callers on different threads take turns (one job at a time); fn must not call run() on the same pool.
  template <typename F>
  void run(int64_t n_tasks, F&& fn) {
    if (n_tasks <= 0) return;
    if (n_tasks == 1 || n_threads_ == 1) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    dispatch(n_tasks, [](void* ctx, int64_t t, int th) { (*static_cast<Fn*>(ctx))(t, th); }, (void*)&fn, false);
  }

  // Calls fn(thread, thread) exactly once on each of the pool's threads (static partitioning: thread t always gets
  // part t, so per-thread data stays in that core's caches and bandwidth tests really use every core).
  template <typename F>
  void run_per_thread(F&& fn) {
    if (n_threads_ == 1) {
      fn(int64_t(0), 0);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    dispatch(n_threads_, [](void* ctx, int64_t t, int th) { (*static_cast<Fn*>(ctx))(t, th); }, (void*)&fn,
             /*per_thread=*/true);
  }

  // Splits [0, n) into at most size() * 4 contiguous chunks, each a multiple of `align` (but the last), and calls
  // fn(begin, end, thread) on each.
  template <typename F>
  void parallel_for(int64_t n, int64_t align, F&& fn) {
    if (n <= 0) return;
    align = std::max<int64_t>(align, 1);
    int64_t units = (n + align - 1) / align;
    int64_t chunks = std::min<int64_t>(units, int64_t(n_threads_) * 4);
    if (units <= n_threads_) chunks = units;
    int64_t per = (units + chunks - 1) / chunks;
    chunks = (units + per - 1) / per;
    run(chunks, [&](int64_t c, int th) {
      int64_t b = c * per * align;
      int64_t e = std::min(n, (c + 1) * per * align);
      if (b < e) fn(b, e, th);
    });
  }

  // The process-wide pool used by the CPU backend (size from set_global_threads, MMFP4_THREADS, or the cores).
  static ThreadPool& global();
  static void set_global_threads(int n);  // takes effect before the first global() call, or rebuilds it
  static int default_threads();

 private:
  using Trampoline = void (*)(void*, int64_t, int);
  void dispatch(int64_t n_tasks, Trampoline tramp, void* ctx, bool per_thread);
  void worker_loop(int id);

  int n_threads_;
  std::vector<std::thread> workers_;
  bool claim(uint32_t gen, int64_t* task);
  void finish_task();

  void run_job(uint32_t gen, int id);

  // Current job. The caller writes these only while no task can be claimed (next_ holds a blocked value), and a
  // successful claim (acquire) makes them visible to the claiming thread.
  static constexpr uint32_t kPerThread = 0x80000000u;  // low half of next_: per-thread job
  static constexpr uint32_t kBlocked = 0x7fffffffu;    // low half of next_: nothing to claim
  Trampoline tramp_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<int64_t> n_tasks_{0};
  alignas(64) std::atomic<uint64_t> next_{0};       // generation << 32 | (kPerThread or next task index)
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int64_t> done_{0};        // tasks of the current job finished
  std::atomic<bool> stop_{false};
  std::mutex dispatch_mu_;  // one job at a time when several threads share the pool (e.g. loading beside a step)
};

}  // namespace mmfp4
