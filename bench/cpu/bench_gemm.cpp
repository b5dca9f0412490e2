// MMFP4 GEMV/GEMM microbenchmarks (and, from bench_ops.cpp, the other ops of the backend) on the GLM-4.7-Flash linear shapes (N x K, y = x W^T) at M = 1, 4, 16, 128, 512,
// for every kernel ISA this CPU runs, next to OpenBLAS SGEMM on the same weights dequantized to float32.
//
// The pair/ benchmarks time our kernel and its baseline alternately within each iteration (see bm_pair_read), so
// their ratios (bw_frac, speedup) are robust to what else runs on a shared machine; read those for the gates.
//
// Counters: GB/s = bytes of weights read per second (MMFP4: 0.516 bytes per weight, codes + f16 scales; SGEMM: 4),
// GFLOP/s = 2 M N K per second, bw_frac = GB/s over the memory read bandwidth measured at start-up in this same
// process (printed in the context block). Every benchmark cycles through copies of its weights totalling more than
// 4x the 32 MB L3, so weights come from DRAM as in a real decode step, not from the cache.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_gemm.h"
#include "backend/cpu/membw.h"
#include "backend/cpu/packed_weight.h"
#include "core/half.h"

#ifdef MMFP4_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace mmfp4 {

void register_op_benchmarks(const std::vector<std::string>& kinds);  // bench_ops.cpp

namespace {

struct Shape {
  const char* name;
  int64_t n, k;
  DType dense = DType::F32;  // F16: a dense F16 weight (the lm_head path) instead of MMFP4
};

const Shape kShapes[] = {
    {"q_a", 768, 2048},           {"kv_a", 576, 2048},     {"q_b", 5120, 768},
    {"kv_b", 8960, 512},          {"o", 2048, 5120},       {"expert_gate", 1536, 2048},
    {"expert_down", 2048, 1536},  {"dense_mlp", 10240, 2048}, {"lm_head_f16_slice", 16384, 2048, DType::F16},
};
const int64_t kRows[] = {1, 4, 16, 128, 512};
constexpr size_t kRotateBytes = size_t(128) << 20;

MemBandwidth g_bw;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The weight copies of the shape being benchmarked (one shape is held at a time).
struct WeightSet {
  std::string name;
  std::vector<std::shared_ptr<uint8_t>> mem;
  std::vector<PackedWeight> packed;
  std::vector<std::vector<float>> f32;  // dequantized copies for SGEMM
};

WeightSet& weights(const Shape& s, bool need_f32) {
  static WeightSet set;
  if (set.name != s.name) {
    set = WeightSet{};
    set.name = s.name;
  }
  std::mt19937_64 rng(42);
  if (set.packed.empty()) {
    HostWeight hw;
    std::vector<uint32_t> codes;
    std::vector<uint16_t> scales, d16;
    hw.n = s.n;
    hw.k = s.k;
    if (s.dense == DType::F16) {
      hw.format = WeightFormat::Dense;
      hw.dtype = DType::F16;
      d16.resize(size_t(s.n * s.k));
      std::normal_distribution<float> nd(0.f, 0.02f);
      for (auto& v : d16) v = f32_to_f16(nd(rng));
      hw.data = d16.data();
    } else {
      hw.format = WeightFormat::MMFP4;
      hw.k_stored = s.k;
      hw.group_size = 128;
      codes.resize(size_t(s.n * s.k / 8));
      scales.resize(size_t(s.n * s.k / 128));
      for (auto& c : codes) c = uint32_t(rng());
      for (auto& v : scales) v = f32_to_f16(0.001f + float(rng() % 1000) * 1e-5f);
      hw.codes = codes.data();
      hw.scales = scales.data();
    }
    const PackedWeight shape = packed_shape(hw);
    const size_t copies = std::max<size_t>(2, (kRotateBytes + size_t(shape.bytes()) - 1) / size_t(shape.bytes()));
    for (size_t c = 0; c < copies; ++c) {
      std::shared_ptr<uint8_t> m(static_cast<uint8_t*>(std::aligned_alloc(64, size_t(shape.bytes()))), std::free);
      set.packed.push_back(pack_weight(hw, m.get()));
      set.mem.push_back(m);
    }
  }
  if (need_f32 && set.f32.empty()) {
    const size_t bytes = size_t(s.n * s.k * 4);
    const size_t copies = std::max<size_t>(2, (kRotateBytes + bytes - 1) / bytes);
    std::vector<float> w(size_t(s.n * s.k));
    for (int64_t r = 0; r < s.n; ++r) packed_row(set.packed[0], r, w.data() + r * s.k);
    for (size_t c = 0; c < copies; ++c) set.f32.push_back(w);
  }
  return set;
}

std::vector<float> random_x(int64_t m, int64_t k) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(size_t(m * k));
  for (auto& v : x) v = nd(rng);
  return x;
}

void report(benchmark::State& st, double bytes_per_call, double flops_per_call, double total_s) {
  const double calls = double(st.iterations());
  const double gbs = bytes_per_call * calls / total_s / 1e9;
  st.counters["GB/s"] = gbs;
  st.counters["GFLOP/s"] = flops_per_call * calls / total_s / 1e9;
  st.counters["bw_frac"] = g_bw.read_gbs > 0 ? gbs / g_bw.read_gbs : 0;
}

// One MMFP4 GEMM of a shape at M rows on the global pool, cycling through the weight copies.
struct GemmRunner {
  Shape s;
  int64_t M;
  WeightSet& set;
  const CpuKernels& kr;
  ThreadPool& pool = ThreadPool::global();
  GemmWorkspace ws;
  GemmTuning tune;
  std::vector<float> x, y;
  size_t next = 0;
  GemmRunner(Shape s_, int64_t m, CpuIsa isa, bool need_f32)
      : s(s_), M(m), set(weights(s_, need_f32)), kr(cpu_kernels(isa)), tune(default_tuning(kr)),
        x(random_x(m, s_.k)), y(size_t(m * s_.n)) {
    gemm_reserve(ws, kr, tune, pool.size(), M, s.k);
  }
  void run() {
    gemm(kr, pool, ws, tune, Act(x.data(), M, s.k), set.packed[next++ % set.packed.size()], 0, s.n,
         Act(y.data(), M, s.n), false);
  }
  double bytes() const { return double(set.packed[0].bytes()); }
  double flops() const { return 2.0 * double(M) * double(s.n) * double(s.k); }
};

void bm_mmfp4(benchmark::State& st, Shape s, int64_t M, CpuIsa isa) {
  GemmRunner g(s, M, isa, false);
  double total = 0;
  for (auto _ : st) {
    const double t0 = now();
    g.run();
    const double dt = now() - t0;
    st.SetIterationTime(dt);
    total += dt;
  }
  benchmark::DoNotOptimize(g.y.data());
  report(st, g.bytes(), g.flops(), total);
}

#ifdef MMFP4_BENCH_OPENBLAS
void bm_sgemm(benchmark::State& st, Shape s, int64_t M) {
  WeightSet& set = weights(s, true);
  openblas_set_num_threads(ThreadPool::global().size());
  std::vector<float> x = random_x(M, s.k), y(size_t(M * s.n));
  size_t i = 0;
  double total = 0;
  for (auto _ : st) {
    const float* w = set.f32[i++ % set.f32.size()].data();
    const double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(s.n), int(s.k), 1.0f, x.data(), int(s.k), w,
                int(s.k), 0.0f, y.data(), int(s.n));
    const double dt = now() - t0;
    st.SetIterationTime(dt);
    total += dt;
  }
  benchmark::DoNotOptimize(y.data());
  report(st, double(s.n * s.k * 4), 2.0 * double(M) * double(s.n) * double(s.k), total);
}
#endif

// Same-run ratios that hold up on a shared machine: each iteration times our kernel and, right after it, the
// baseline on the same amount of work, so both see the same machine state.
//   pair/read: one GEMV over the weight copies, then a plain read of as many bytes from a 1 GiB buffer
//   pair/sgemm: one MMFP4 GEMM, then OpenBLAS SGEMM on the dequantized weights
std::unique_ptr<float, void (*)(void*)> g_read_buf(nullptr, std::free);
constexpr size_t kReadBufFloats = size_t(1) << 28;  // 1 GiB

void bm_pair_read(benchmark::State& st, Shape s, int64_t M, CpuIsa isa) {
  GemmRunner g(s, M, isa, false);
  if (!g_read_buf) {
    g_read_buf.reset(static_cast<float*>(std::aligned_alloc(64, kReadBufFloats * 4)));
    std::memset(g_read_buf.get(), 0, kReadBufFloats * 4);
  }
  const size_t n = size_t(g.bytes()) / 4 / 64 * 64;
  size_t off = 0;
  double tk = 0, tr = 0;
  float sink = 0;
  for (auto _ : st) {
    double t0 = now();
    g.run();
    const double t1 = now();
    if (off + n > kReadBufFloats) off = 0;
    sink += read_pass(g.pool, g_read_buf.get() + off, n);
    off += n;
    const double t2 = now();
    tk += t1 - t0;
    tr += t2 - t1;
    st.SetIterationTime(t2 - t0);
  }
  benchmark::DoNotOptimize(sink);
  const double calls = double(st.iterations()), bytes = g.bytes();
  st.counters["GB/s"] = bytes * calls / tk / 1e9;
  st.counters["read_GB/s"] = double(n) * 4 * calls / tr / 1e9;
  st.counters["bw_frac"] = (bytes / tk) / (double(n) * 4 / tr);
}

#ifdef MMFP4_BENCH_OPENBLAS
void bm_pair_sgemm(benchmark::State& st, Shape s, int64_t M, CpuIsa isa) {
  GemmRunner g(s, M, isa, true);
  openblas_set_num_threads(g.pool.size());
  size_t j = 0;
  double tk = 0, tb = 0;
  for (auto _ : st) {
    const double t0 = now();
    g.run();
    const double t1 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(s.n), int(s.k), 1.0f, g.x.data(), int(s.k),
                g.set.f32[j++ % g.set.f32.size()].data(), int(s.k), 0.0f, g.y.data(), int(s.n));
    const double t2 = now();
    tk += t1 - t0;
    tb += t2 - t1;
    st.SetIterationTime(t2 - t0);
  }
  const double calls = double(st.iterations()), flops = g.flops();
  st.counters["GFLOP/s"] = flops * calls / tk / 1e9;
  st.counters["openblas_GFLOP/s"] = flops * calls / tb / 1e9;
  st.counters["speedup"] = tb / tk;
}
#endif

void bm_membw(benchmark::State& st, int threads) {
  ThreadPool& pool = ThreadPool::global();
  MemBandwidth b;
  for (auto _ : st) b = measure_memory_bandwidth(pool, size_t(512) << 20, 1, threads);
  st.counters["read_GB/s"] = b.read_gbs;
  st.counters["copy_GB/s"] = b.copy_gbs;
}

void register_all() {
  std::vector<CpuIsa> isas{CpuIsa::Avx2};
  if (detect_cpu_features().has_avx512()) isas.push_back(CpuIsa::Avx512);
  const char* only = std::getenv("MMFP4_BENCH_ISA");  // restrict to one ISA (avx2 / avx512)
  benchmark::RegisterBenchmark("membw/threads:1", bm_membw, 1)->Iterations(3)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("membw/threads:all", bm_membw, 0)->Iterations(3)->Unit(benchmark::kMillisecond);
  for (const Shape& s : kShapes) {
    for (int64_t M : kRows) {
      const std::string shape = std::string(s.name) + "_" + std::to_string(s.n) + "x" + std::to_string(s.k);
      for (CpuIsa isa : isas) {
        if (only && std::string(only) != isa_name(isa)) continue;
        const std::string name = std::string("mmfp4/") + isa_name(isa) + "/" + shape + "/M:" + std::to_string(M);
        benchmark::RegisterBenchmark(name.c_str(), bm_mmfp4, s, M, isa)
            ->UseManualTime()
            ->MinTime(0.3)
            ->Unit(benchmark::kMicrosecond);
      }
      for (CpuIsa isa : isas) {
        if (only && std::string(only) != isa_name(isa)) continue;
        const std::string tag = std::string(isa_name(isa)) + "/" + shape + "/M:" + std::to_string(M);
        if (M <= 16)
          benchmark::RegisterBenchmark(("pair/read/" + tag).c_str(), bm_pair_read, s, M, isa)
              ->UseManualTime()->MinTime(0.5)->Unit(benchmark::kMicrosecond);
#ifdef MMFP4_BENCH_OPENBLAS
        if (M >= 128)
          benchmark::RegisterBenchmark(("pair/sgemm/" + tag).c_str(), bm_pair_sgemm, s, M, isa)
              ->UseManualTime()->MinTime(0.5)->Unit(benchmark::kMicrosecond);
#endif
      }
#ifdef MMFP4_BENCH_OPENBLAS
      const std::string name = "openblas_sgemm/" + shape + "/M:" + std::to_string(M);
      benchmark::RegisterBenchmark(name.c_str(), bm_sgemm, s, M)->UseManualTime()->MinTime(0.3)->Unit(benchmark::kMicrosecond);
#endif
    }
  }
}

}  // namespace
}  // namespace mmfp4

int main(int argc, char** argv) {
  using namespace mmfp4;
#ifdef MMFP4_BENCH_OPENBLAS
  // OpenBLAS's idle threads busy-wait for 2^28 cycles (~70 ms) after each call by default, stealing a core from
  // whatever runs next (our kernels in the pair/ benchmarks). Its timeout is read when the library loads, so set
  // it to the minimum and start again.
  if (!std::getenv("OPENBLAS_THREAD_TIMEOUT")) {
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    execv("/proc/self/exe", argv);
  }
#endif
  benchmark::Initialize(&argc, argv);
  ThreadPool& pool = ThreadPool::global();
  g_bw = measure_memory_bandwidth(pool);
  const MemBandwidth one = measure_memory_bandwidth(pool, size_t(1) << 30, 5, 1);
  benchmark::AddCustomContext("cpu", cpu_model_name());
  benchmark::AddCustomContext("threads", std::to_string(pool.size()));
  benchmark::AddCustomContext("kernel_isa_best", isa_name(runtime_isa()));
  benchmark::AddCustomContext("mem_read_GB/s_all_threads", std::to_string(g_bw.read_gbs));
  benchmark::AddCustomContext("mem_copy_GB/s_all_threads", std::to_string(g_bw.copy_gbs));
  benchmark::AddCustomContext("mem_read_GB/s_1_thread", std::to_string(one.read_gbs));
#ifdef MMFP4_BENCH_OPENBLAS
  benchmark::AddCustomContext("openblas", std::string(openblas_get_config()) + " core " + openblas_get_corename() +
                                              ", OPENBLAS_THREAD_TIMEOUT=" + std::getenv("OPENBLAS_THREAD_TIMEOUT"));
#endif
  register_all();
  std::vector<std::string> kinds{"ref", "avx2"};
  if (detect_cpu_features().has_avx512()) kinds.push_back("avx512");
  register_op_benchmarks(kinds);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
