// The CPU GEMM driver: y[M, rows] = x[M, k] W[row0 .. row0 + rows)^T (+ y) on a P64-packed weight, spread over
// the thread pool. It picks the fused path for small M and the packed path for large M (gemm_kernels.h); both give
// the same bits, so the switch point is a speed choice only. Scratch comes from a Workspace sized at load.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/gemm_kernels.h"
#include "core/thread_pool.h"

namespace mmfp4 {

// A 64-byte aligned float buffer that grows (reallocates) only when asked for more than it holds; growths()
// counts reallocations, so tests can check that a warmed-up decode step allocates nothing.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ScratchBuffer(ScratchBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  ~ScratchBuffer();
  float* get(size_t floats);
  size_t size() const { return n_; }
  static int64_t growths();

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
};

struct GemmWorkspace {
  ScratchBuffer apack;                 // x packed in tiles of kMR rows (packed path)
  std::vector<ScratchBuffer> b, s, c;  // per thread: expanded weights, scales, output block
  std::vector<int64_t> task_start;     // gemm_batch: first task of each job (capacity kept between calls)
  void resize_threads(int n) {
    b.resize(size_t(n));
    s.resize(size_t(n));
    c.resize(size_t(n));
  }
};

struct GemmTuning {
  int64_t fused_max_rows = 8;  // M above this takes the packed path (default_tuning: the ISA's crossover)
  int64_t kc = 256;            // k-block of the packed path (rounded to a multiple of the group size)
  int64_t block_panels = 2;    // panels per packed-path task (its output block lives in L2)
};

GemmTuning default_tuning(const CpuKernels& kr);

// Sizes the workspace for calls of up to max_rows rows on weights of up to max_k columns.
void gemm_reserve(GemmWorkspace& ws, const CpuKernels& kr, const GemmTuning& tune, int threads, int64_t max_rows,
                  int64_t max_k);

void gemm(const CpuKernels& kr, ThreadPool& pool, GemmWorkspace& ws, const GemmTuning& tune, Act x,
          const PackedWeight& w, int64_t row0, int64_t rows, Act out, bool accumulate);

// One of several independent GEMMs run together (the experts of a MoE layer, the heads of MLA's expand_v).
struct GemmJob {
  Act x;
  const PackedWeight* w = nullptr;
  int64_t row0 = 0, rows = 0;
  Act out;
  bool accumulate = false;
};

// Runs the jobs; those small enough for the fused path share one parallel region (tasks over every job's panels),
// so a decode step pays one dispatch for all of them and the threads stream several weights side by side.
void gemm_batch(const CpuKernels& kr, ThreadPool& pool, GemmWorkspace& ws, const GemmTuning& tune,
                const GemmJob* jobs, int64_t n_jobs);

}  // namespace mmfp4
