// Helpers for the CUDA tests: a CPU reference backend and a CUDA backend side by side, buffers mirrored on both,
// random weights (MMFP4 rotated or not, dense BF16/F16/F32), NaN poisoning, and the row-relative error measure.
// Every test skips (GTEST_SKIP) with a clear message when no CUDA GPU is visible: CI builds them without one.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "core/half.h"
#include "format/weight.h"

namespace mmfp4::cudatest {

#define MMFP4_SKIP_WITHOUT_GPU()                                                                         \
  do {                                                                                                   \
    if (!::mmfp4::cuda_available())                                                                      \
      GTEST_SKIP() << "no CUDA GPU visible (" << ::mmfp4::cuda_status_message()                         \
                   << "): the CUDA tests run on a GPU machine (scripts/device/check_all.sh)";            \
  } while (0)

// The shared fixtures: $MMFP4_SHARED_DIR at run time (the device machine gets a copy), else the build's path.
inline std::string shared_path(const std::string& rel) {
  const char* env = std::getenv("MMFP4_SHARED_DIR");
  return std::string(env && *env ? env : MMFP4_SHARED_DIR) + "/" + rel;
}

// max over rows of (max |a - b| / max |b|); NaN or Inf in a never passes.
inline double row_rel_err(const std::vector<float>& a, const std::vector<float>& b, int64_t rows, int64_t cols) {
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double num = 0, den = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double x = a[size_t(r * cols + c)], y = b[size_t(r * cols + c)];
      if (!std::isfinite(x)) return INFINITY;
      num = std::max(num, std::fabs(x - y));
      den = std::max(den, std::fabs(y));
    }
    worst = std::max(worst, den > 0 ? num / den : num);
  }
  return worst;
}

inline float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  float uni(float lo = -1.f, float hi = 1.f) { return std::uniform_real_distribution<float>(lo, hi)(g); }
  std::vector<float> vec(size_t n, float lo = -1.f, float hi = 1.f) {
    std::vector<float> v(n);
    for (auto& x : v) x = uni(lo, hi);
    return v;
  }
  int64_t below(int64_t n) { return int64_t(g() % uint64_t(n)); }
};

// A random weight with its storage.
struct TestWeight {
  std::vector<uint32_t> codes;
  std::vector<uint16_t> scales, d16;
  std::vector<float> d32;
  HostWeight hw;
};

// MMFP4 [n, k]: rotated when had > 0 (stored width k rounded up to had). Scales ~ 2^-6 .. 2^-3 with a few zero
// and subnormal ones, every code.
inline TestWeight random_fp4(int64_t n, int64_t k, int group, int had, uint64_t seed) {
  Rng r(seed);
  TestWeight t;
  const int64_t ks = had > 0 ? (k + had - 1) / had * had : k;
  t.codes.resize(size_t(n * ks / 8));
  t.scales.resize(size_t(n * ks / group));
  for (auto& c : t.codes) c = uint32_t(r.g());
  for (auto& s : t.scales) {
    const int64_t u = r.below(64);
    s = u == 0 ? 0 : u == 1 ? uint16_t(1 + r.below(1023)) : f32_to_f16(std::exp2(r.uni(-6.f, -3.f)));
  }
  t.hw.name = "test.fp4";
  t.hw.format = WeightFormat::MMFP4;
  t.hw.n = n;
  t.hw.k = k;
  t.hw.k_stored = ks;
  t.hw.group_size = group;
  t.hw.hadamard_block = had;
  t.hw.codes = t.codes.data();
  t.hw.scales = t.scales.data();
  return t;
}

inline TestWeight random_dense(int64_t n, int64_t k, DType dt, uint64_t seed) {
  Rng r(seed);
  TestWeight t;
  t.hw.name = "test.dense";
  t.hw.format = WeightFormat::Dense;
  t.hw.n = n;
  t.hw.k = t.hw.k_stored = k;
  t.hw.dtype = dt;
  if (dt == DType::F32) {
    t.d32 = r.vec(size_t(n * k), -0.1f, 0.1f);
    t.hw.data = t.d32.data();
  } else {
    t.d16.resize(size_t(n * k));
    for (auto& v : t.d16) v = dt == DType::BF16 ? f32_to_bf16(r.uni(-0.1f, 0.1f)) : f32_to_f16(r.uni(-0.1f, 0.1f));
    t.hw.data = t.d16.data();
  }
  return t;
}

// The two backends, and float buffers mirrored on both.
struct Pair {
  std::unique_ptr<CpuBackend> cpu;
  std::unique_ptr<cuda::CudaBackend> gpu;
  std::vector<void*> cpu_mem, gpu_mem;

  Pair() {
    cpu = std::make_unique<CpuBackend>(0);
    gpu = std::make_unique<cuda::CudaBackend>(0);
    WorkspacePlan plan;
    plan.max_tokens = 320;
    plan.max_top_k = 8;
    gpu->reserve_workspace(plan);
  }
  ~Pair() {
    for (void* p : cpu_mem) cpu->release(p);
    for (void* p : gpu_mem) gpu->release(p);
  }
  template <typename T>
  T* cpu_buf(const std::vector<T>& v) {
    auto* p = static_cast<T*>(cpu->alloc(std::max<size_t>(v.size(), 1) * sizeof(T), "test"));
    cpu_mem.push_back(p);
    if (!v.empty()) std::memcpy(p, v.data(), v.size() * sizeof(T));
    return p;
  }
  template <typename T>
  T* gpu_buf(const std::vector<T>& v) {
    auto* p = static_cast<T*>(gpu->alloc(std::max<size_t>(v.size(), 1) * sizeof(T), "test"));
    gpu_mem.push_back(p);
    if (!v.empty()) gpu->upload(p, v.data(), v.size() * sizeof(T));
    return p;
  }
  // A [rows, cols] activation with row stride `stride` (>= cols) on both backends.
  struct Twin {
    Act c, g;
  };
  Twin act(const std::vector<float>& data, int64_t rows, int64_t cols, int64_t stride = 0) {
    if (stride == 0) stride = cols;
    return {Act(cpu_buf(data), rows, cols, stride), Act(gpu_buf(data), rows, cols, stride)};
  }
  // Fills the elements of a GPU view with NaN (so an unwritten element shows); other columns are left alone.
  void poison(Act a) {
    const std::vector<float> nan(size_t(a.cols), std::numeric_limits<float>::quiet_NaN());
    for (int64_t r = 0; r < a.rows; ++r) gpu->upload(a.row(r), nan.data(), nan.size() * sizeof(float));
  }
  std::vector<float> get_gpu(Act a) {
    std::vector<float> out(size_t(a.rows * a.cols));
    if (a.rows == 0) return out;
    std::vector<float> all(size_t((a.rows - 1) * a.stride + a.cols));
    gpu->download(all.data(), a.data, all.size() * sizeof(float));
    for (int64_t r = 0; r < a.rows; ++r)
      std::memcpy(&out[size_t(r * a.cols)], &all[size_t(r * a.stride)], size_t(a.cols) * sizeof(float));
    return out;
  }
  static std::vector<float> get_cpu(Act a) {
    std::vector<float> out(size_t(a.rows * a.cols));
    for (int64_t r = 0; r < a.rows; ++r) std::memcpy(&out[size_t(r * a.cols)], a.row(r), size_t(a.cols) * 4);
    return out;
  }
  double err(Twin t) { return row_rel_err(get_gpu(t.g), get_cpu(t.c), t.c.rows, t.c.cols); }

  // A linear's operands on both backends and its CPU result: random x [M, K] (row stride K + 3), y [M, N] (stride
  // N + 5) from y0, y.c = the CPU's x W^T (+ y0 if accumulate). The GPU y still holds y0.
  struct LinearCase {
    Twin x, y;
    std::vector<float> y0;
  };
  LinearCase linear_case(Rng& r, const LinearWeight& w_cpu, int64_t M, int64_t K, int64_t N, bool accumulate) {
    LinearCase c;
    c.x = act(r.vec(size_t(M * (K + 3))), M, K, K + 3);
    c.y0 = r.vec(size_t(M * (N + 5)));
    c.y = act(c.y0, M, N, N + 5);
    cpu->linear(c.x.c, w_cpu, c.y.c, accumulate, false);
    return c;
  }
  // The GPU's linear of a case, from y0 again (poisoned first when not accumulating): for runs under several switches.
  void run_linear(const LinearCase& c, const LinearWeight& w_gpu, bool accumulate) {
    gpu->upload(c.y.g.data, c.y0.data(), c.y0.size() * 4);
    if (!accumulate) poison(c.y.g);
    gpu->linear(c.x.g, w_gpu, c.y.g, accumulate, false);
  }
};

// A paged cache with `lens` tokens per sequence (blocks shuffled), filled through the store op on both backends,
// and the batch of every token of every sequence (as a prefill) to attend with.
struct PagedBatch {
  std::vector<int32_t> tokens, positions, seq, slots, bt;
  int64_t n_seqs = 0, max_blocks = 0;
  BatchMeta cpu_meta, gpu_meta;
  KVLayerView kc, kg;
};

// The per-token arrays of a batch into both metas: the CPU reads the host arrays; the GPU gets device copies and the
// same host mirrors, as the model passes them (device backends may plan with them).
inline void set_batch_arrays(Pair& p, const std::vector<int32_t>& tokens, const std::vector<int32_t>& positions,
                             const std::vector<int32_t>& seq, const std::vector<int32_t>& slots, BatchMeta& cpu,
                             BatchMeta& gpu) {
  for (BatchMeta* m : {&cpu, &gpu}) {
    m->n_tokens = int64_t(tokens.size());
    m->h_positions = positions.data();
    m->h_seq = seq.data();
    m->h_slots = slots.data();
  }
  cpu.tokens = tokens.data();
  gpu.tokens = p.gpu_buf(tokens);
  gpu.positions = p.gpu_buf(positions);
  gpu.seq = p.gpu_buf(seq);
  gpu.slots = p.gpu_buf(slots);
}

inline PagedBatch make_paged(Pair& p, const std::vector<int64_t>& lens, int64_t block_size, int64_t width, Rng& r,
                             DType gpu_dtype = DType::BF16, bool contiguous = false) {
  PagedBatch b;
  b.n_seqs = int64_t(lens.size());
  int64_t total_blocks = 0;
  for (int64_t l : lens) {
    b.max_blocks = std::max(b.max_blocks, (l + block_size - 1) / block_size);
    total_blocks += (l + block_size - 1) / block_size;
  }
  std::vector<int32_t> perm(size_t(total_blocks + 3));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), r.g);
  b.bt.assign(size_t(b.n_seqs * b.max_blocks), -1);
  size_t next = 0;
  for (int64_t s = 0; s < b.n_seqs; ++s)
    for (int64_t j = 0; j < (lens[size_t(s)] + block_size - 1) / block_size; ++j)
      b.bt[size_t(s * b.max_blocks + j)] = perm[next++];
  // Interleave the sequences' tokens so they do not come in contiguous runs (or, contiguous: one run per sequence,
  // as the engine batches a prefill).
  auto add = [&](int64_t s, int64_t pos) {
    b.tokens.push_back(0);
    b.positions.push_back(int32_t(pos));
    b.seq.push_back(int32_t(s));
    b.slots.push_back(b.bt[size_t(s * b.max_blocks + pos / block_size)] * int32_t(block_size) +
                      int32_t(pos % block_size));
  };
  if (contiguous) {
    for (int64_t s = 0; s < b.n_seqs; ++s)
      for (int64_t pos = 0; pos < lens[size_t(s)]; ++pos) add(s, pos);
  }
  for (int64_t pos = 0; !contiguous; ++pos) {
    bool any = false;
    for (int64_t s = 0; s < b.n_seqs; ++s)
      if (pos < lens[size_t(s)]) {
        any = true;
        add(s, pos);
      }
    if (!any) break;
  }
  for (BatchMeta* m : {&b.cpu_meta, &b.gpu_meta}) {
    m->n_seqs = b.n_seqs;
    m->max_blocks = b.max_blocks;
    m->h_block_tables = b.bt.data();
  }
  set_batch_arrays(p, b.tokens, b.positions, b.seq, b.slots, b.cpu_meta, b.gpu_meta);
  b.gpu_meta.block_tables = p.gpu_buf(b.bt);
  const int64_t n_blocks = total_blocks + 3;
  b.kc = KVLayerView{p.cpu->alloc(size_t(n_blocks * block_size * width * 4), "kv"), DType::F32, block_size, width};
  b.kg = KVLayerView{p.gpu->alloc(size_t(n_blocks * block_size * width * dtype_size(gpu_dtype)), "kv"), gpu_dtype,
                     block_size, width};
  p.cpu_mem.push_back(b.kc.data);
  p.gpu_mem.push_back(b.kg.data);
  return b;
}

// Random values that bf16 holds exactly: the CPU's float32 cache and the GPU's bf16 cache then hold the same numbers.
inline std::vector<float> bf16_exact(Rng& r, size_t n, float scale = 1.0f) {
  std::vector<float> v = r.vec(n, -scale, scale);
  for (auto& x : v) x = round_bf16(x);
  return v;
}

}  // namespace mmfp4::cudatest
