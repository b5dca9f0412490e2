#include "backend/cpu/cpu_gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace mmfp4 {

namespace {
std::atomic<int64_t> g_growths{0};
}

ScratchBuffer::~ScratchBuffer() { std::free(p_); }

float* ScratchBuffer::get(size_t floats) {
  if (floats <= n_) return p_;
  std::free(p_);
  const size_t bytes = std::max<size_t>(64, (floats * sizeof(float) + 63) / 64 * 64);
  p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p_) throw std::bad_alloc();
  std::memset(p_, 0, bytes);  // touch the pages now, not inside the next kernel
  n_ = floats;
  g_growths.fetch_add(1, std::memory_order_relaxed);
  return p_;
}

int64_t ScratchBuffer::growths() { return g_growths.load(std::memory_order_relaxed); }

namespace {

int64_t k_block(const PackedWeight& w, const GemmTuning& tune) {
  if (!w.mmfp4()) return tune.kc;
  return std::max<int64_t>(1, tune.kc / w.group) * w.group;
}

// Packed x: for each k-block [k0, k0 + kc), every tile of kMR rows as [kc][kMR] (zero rows past M), tiles of a
// k-block consecutive, so the micro-kernels walk one contiguous stream per k-block.
inline float* apack_block(float* apack, int64_t tiles, int64_t k0, int64_t kc_len, int64_t t) {
  return apack + k0 * tiles * kMR + t * kc_len * kMR;
}

void pack_tile(Act x, int64_t t, int64_t K, int64_t kc, int64_t tiles, float* apack) {
  const int64_t r0 = t * kMR, n = std::min<int64_t>(kMR, x.rows - r0);
  for (int64_t k0 = 0; k0 < K; k0 += kc) {
    const int64_t len = std::min(kc, K - k0);
    float* dst = apack_block(apack, tiles, k0, len, t);
    if (n < kMR) std::memset(dst, 0, size_t(len * kMR) * sizeof(float));
    for (int64_t i = 0; i < n; ++i) {
      const float* src = x.row(r0 + i) + k0;
      for (int64_t j = 0; j < len; ++j) dst[j * kMR + i] = src[j];
    }
  }
}

// Output columns of panel p that fall in [row0, row0 + rows): [col0, col0 + cols) of the panel, at out column oc.
struct PanelCols {
  int col0, cols;
  int64_t oc;
};
inline PanelCols panel_cols(int64_t p, int64_t row0, int64_t rows) {
  const int64_t lo = std::max(row0, p * kPanelRows), hi = std::min(row0 + rows, (p + 1) * kPanelRows);
  return {int(lo - p * kPanelRows), int(hi - lo), lo - row0};
}

// Panels [a, b) of a job on the fused path.
void fused_panels(const CpuKernels& kr, const GemmJob& j, int64_t a, int64_t b) {
  for (int64_t p = a; p < b; ++p) {
    const PanelCols pc = panel_cols(p, j.row0, j.rows);
    for (int64_t m = 0; m < j.x.rows; m += kFusedMaxM) {
      FusedArgs f;
      f.x = j.x.row(m);
      f.x_stride = j.x.stride;
      f.m = int(std::min<int64_t>(kFusedMaxM, j.x.rows - m));
      f.w = j.w;
      f.panel = p;
      f.col0 = pc.col0;
      f.cols = pc.cols;
      f.out = j.out.row(m) + pc.oc;
      f.out_stride = j.out.stride;
      f.accumulate = j.accumulate;
      kr.fused(f);
    }
  }
}

inline int64_t first_panel(const GemmJob& j) { return j.row0 / kPanelRows; }
inline int64_t panel_count(const GemmJob& j) {
  return (j.row0 + j.rows + kPanelRows - 1) / kPanelRows - first_panel(j);
}

// Contiguous runs of panels per task (one prefetch stream each), about two tasks per thread for balance.
void gemm_fused(const CpuKernels& kr, ThreadPool& pool, const GemmJob& j) {
  const int64_t p0 = first_panel(j), np = panel_count(j);
  const int64_t tasks = std::min<int64_t>(np, int64_t(pool.size()) * 2);
  pool.run(tasks, [&](int64_t task, int) { fused_panels(kr, j, p0 + np * task / tasks, p0 + np * (task + 1) / tasks); });
}

void gemm_packed(const CpuKernels& kr, ThreadPool& pool, GemmWorkspace& ws, const GemmTuning& tune, Act x,
                 const PackedWeight& w, int64_t row0, int64_t rows, Act out, bool accumulate) {
  const int64_t M = x.rows, K = w.k, tiles = (M + kMR - 1) / kMR;
  const int64_t kc = k_block(w, tune), nr = kr.nr;
  float* apack = ws.apack.get(size_t(tiles * K * kMR));
  pool.run(tiles, [&](int64_t t, int) { pack_tile(x, t, K, kc, tiles, apack); });

  const int64_t p0 = row0 / kPanelRows, p1 = (row0 + rows + kPanelRows - 1) / kPanelRows, np = p1 - p0;
  const int64_t bp = std::max<int64_t>(1, std::min(tune.block_panels, (np + pool.size() - 1) / pool.size()));
  const int64_t tasks = (np + bp - 1) / bp;
  const int64_t ldc = bp * kPanelRows;
  pool.run(tasks, [&](int64_t task, int th) {
    const int64_t pa = p0 + task * bp, pb = std::min(p1, pa + bp);
    float* b = ws.b[size_t(th)].get(size_t(kc * nr));
    float* s = ws.s[size_t(th)].get(size_t(std::max<int64_t>(1, kc / std::max(w.group, 1)) * nr));
    float* c = ws.c[size_t(th)].get(size_t(M * ldc));
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t k1 = std::min(K, k0 + kc);
      for (int64_t p = pa; p < pb; ++p) {
        const PanelCols pc = panel_cols(p, row0, rows);
        for (int64_t c0 = 0; c0 < kPanelRows; c0 += nr) {
          if (c0 + nr <= pc.col0 || c0 >= pc.col0 + pc.cols) continue;  // sub-panel outside the row range
          kr.expand(w, p, int(c0), k0, k1, b, s);
          for (int64_t t = 0; t < tiles; ++t) {
            TileArgs ta;
            ta.a = apack_block(apack, tiles, k0, k1 - k0, t);
            ta.b = b;
            ta.s = w.mmfp4() ? s : nullptr;
            ta.kc = k1 - k0;
            ta.group = w.mmfp4() ? w.group : 0;
            ta.mr = int(std::min<int64_t>(kMR, M - t * kMR));
            ta.c = c + t * kMR * ldc + (p - pa) * kPanelRows + c0;
            ta.ldc = ldc;
            ta.first = k0 == 0;
            kr.tile(ta);
          }
        }
      }
    }
    for (int64_t p = pa; p < pb; ++p) {
      const PanelCols pc = panel_cols(p, row0, rows);
      for (int64_t m = 0; m < M; ++m) {
        const float* src = c + m * ldc + (p - pa) * kPanelRows + pc.col0;
        float* dst = out.row(m) + pc.oc;
        if (accumulate) {
          for (int j = 0; j < pc.cols; ++j) dst[j] = dst[j] + src[j];
        } else {
          std::memcpy(dst, src, size_t(pc.cols) * sizeof(float));
        }
      }
    }
  });
}

}  // namespace

GemmTuning default_tuning(const CpuKernels& kr) {
  GemmTuning t;
  t.fused_max_rows = kr.fused_max_rows;
  return t;
}

void gemm_reserve(GemmWorkspace& ws, const CpuKernels& kr, const GemmTuning& tune, int threads, int64_t max_rows,
                  int64_t max_k) {
  ws.resize_threads(threads);
  if (max_rows <= tune.fused_max_rows) return;  // the fused path needs no scratch
  const int64_t tiles = (max_rows + kMR - 1) / kMR;
  ws.apack.get(size_t(tiles * max_k * kMR));
  for (int t = 0; t < threads; ++t) {
    ws.b[size_t(t)].get(size_t(tune.kc * kr.nr));
    ws.s[size_t(t)].get(size_t(tune.kc / 8 * kr.nr));
    ws.c[size_t(t)].get(size_t(max_rows * tune.block_panels * kPanelRows));
  }
}

void gemm(const CpuKernels& kr, ThreadPool& pool, GemmWorkspace& ws, const GemmTuning& tune, Act x,
          const PackedWeight& w, int64_t row0, int64_t rows, Act out, bool accumulate) {
  MMFP4_ASSERT(x.cols == w.k && out.rows == x.rows && out.cols == rows && row0 >= 0 && row0 + rows <= w.n);
  if (x.rows == 0 || rows == 0) return;
  if (int64_t(ws.b.size()) < pool.size()) ws.resize_threads(pool.size());
  if (x.rows <= tune.fused_max_rows) {
    gemm_fused(kr, pool, GemmJob{x, &w, row0, rows, out, accumulate});
  } else {
    gemm_packed(kr, pool, ws, tune, x, w, row0, rows, out, accumulate);
  }
}

void gemm_batch(const CpuKernels& kr, ThreadPool& pool, GemmWorkspace& ws, const GemmTuning& tune,
                const GemmJob* jobs, int64_t n_jobs) {
  // Large jobs run one after the other, each parallel inside.
  int64_t total_panels = 0;
  for (int64_t i = 0; i < n_jobs; ++i) {
    const GemmJob& j = jobs[i];
    if (j.x.rows == 0 || j.rows == 0) continue;
    if (j.x.rows > tune.fused_max_rows) {
      gemm(kr, pool, ws, tune, j.x, *j.w, j.row0, j.rows, j.out, j.accumulate);
    } else {
      MMFP4_ASSERT(j.x.cols == j.w->k && j.out.rows == j.x.rows && j.out.cols == j.rows);
      total_panels += panel_count(j);
    }
  }
  if (total_panels == 0) return;
  // Small jobs: tasks of about total / (4 * threads) panels, never spanning two jobs.
  const int64_t per = std::max<int64_t>(1, total_panels / (int64_t(pool.size()) * 4));
  auto& start = ws.task_start;
  start.clear();
  int64_t tasks = 0;
  for (int64_t i = 0; i < n_jobs; ++i) {
    start.push_back(tasks);
    const GemmJob& j = jobs[i];
    if (j.x.rows == 0 || j.rows == 0 || j.x.rows > tune.fused_max_rows) continue;
    tasks += (panel_count(j) + per - 1) / per;
  }
  start.push_back(tasks);
  pool.run(tasks, [&](int64_t task, int) {
    int64_t i = 0;
    while (start[size_t(i + 1)] <= task) ++i;
    const GemmJob& j = jobs[i];
    const int64_t c = task - start[size_t(i)], p0 = first_panel(j), np = panel_count(j);
    fused_panels(kr, j, p0 + c * per, std::min(p0 + np, p0 + (c + 1) * per));
  });
}

}  // namespace mmfp4

namespace mmfp4 {

const CpuKernels& cpu_kernels(CpuIsa isa) {
  static const CpuKernels avx2 = [] {
    CpuKernels k;
    fill_kernels_avx2(k);
    return k;
  }();
  static const CpuKernels avx512 = [] {
    CpuKernels k;
    fill_kernels_avx512(k);
    return k;
  }();
  return isa == CpuIsa::Avx512 ? avx512 : avx2;
}

}  // namespace mmfp4
