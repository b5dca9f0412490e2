// Linear-layer benchmark of the CUDA backend: MMFP4 (and the F16 lm_head) through CudaBackend::linear, exactly as
// the model calls it, against cuBLAS BF16 on the same shape and the device's streaming-read bandwidth, all in one
// run. Weight copies rotate so that every timed call reads its weights from HBM, not from the 50 MB L2.
//
//   bench_cuda_linear [--shapes all|big|glm|NAME,...] [--m 1,2,4,...] [--out FILE.json] [--quick]
//
// Per shape first the ceilings at its size: a plain streaming read of the weight's bytes alone (cold in L2, launch and
// ramp included, launched with PDL as the linears are), waiting for the previous launch before loading and loading
// before that wait. Then one row per (shape, M): time per call, weight bytes read per second (the decode figure of
// merit), TFLOP/s, and the same for cuBLAS BF16 (bf16 weights: 3.9x the bytes of MMFP4). From M = 128 (the cuBLAS
// prefill path) two more columns: the product from activations already in 16 bits (CudaBackend::linear_16bit: what runs
// after an rmsnorm that wrote them, FastPaths::norm_blas; the operands cuBLAS BF16 gets) and its ratio to cuBLAS
// BF16, and an rmsnorm + linear pair with that fusion against the pair without it (norm, conversion, product).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "bench_util.h"
#include "core/half.h"

using namespace mmfp4;

namespace {

struct Shape {
  std::string name;
  int64_t n, k;
  bool f16;  // dense F16 weight (lm_head) instead of MMFP4
};

const std::vector<Shape> kShapes = {
    {"28672x8192", 28672, 8192, false},
    {"glm.q_a", 768, 2048, false},
    {"glm.kv_a", 576, 2048, false},
    {"glm.q_b", 5120, 768, false},
    {"glm.kv_b", 8960, 512, false},
    {"glm.o", 2048, 5120, false},
    {"glm.expert_gate_up", 3072, 2048, false},
    {"glm.expert_down", 2048, 1536, false},
    {"glm.dense_gate_up", 20480, 2048, false},
    {"glm.lm_head_f16", 154880, 2048, true},
};

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLAS error ", int(s), " in ", what);
}

// Median of `reps` timings of `iters` calls each (per call, microseconds).
template <typename F>
double time_us(cudaStream_t st, int iters, int reps, F&& call) {
  cudaEvent_t a, b;
  MMFP4_CUDA_CHECK(cudaEventCreate(&a), "event");
  MMFP4_CUDA_CHECK(cudaEventCreate(&b), "event");
  for (int i = 0; i < 3; ++i) call(i);  // warm-up
  std::vector<double> t;
  int c = 0;
  for (int r = 0; r < reps; ++r) {
    MMFP4_CUDA_CHECK(cudaEventRecord(a, st), "event");
    for (int i = 0; i < iters; ++i) call(c++);
    MMFP4_CUDA_CHECK(cudaEventRecord(b, st), "event");
    MMFP4_CUDA_CHECK(cudaEventSynchronize(b), "timed calls");
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(double(ms) * 1e3 / iters);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) out.push_back(x);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<int64_t> ms = {1, 2, 4, 8, 16, 32, 64, 128, 4096};
    std::string which = "all", out_path;
    bool quick = false;
    int force_copies = 0;  // --copies N: that many weight copies (1: the weights stay in L2; measurement only)
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--m" && i + 1 < argc) {
        ms.clear();
        for (auto& v : split(argv[++i])) ms.push_back(std::stoll(v));
      } else if (a == "--shapes" && i + 1 < argc) {
        which = argv[++i];
      } else if (a == "--out" && i + 1 < argc) {
        out_path = argv[++i];
      } else if (a == "--quick") {
        quick = true;
      } else if (a == "--copies" && i + 1 < argc) {
        force_copies = std::stoi(argv[++i]);
      } else {
        std::fprintf(stderr, "usage: %s [--shapes all|big|glm|NAME,...] [--m 1,2,...] [--out FILE] [--quick] [--copies N]\n",
                     argv[0]);
        return 2;
      }
    }
    for (auto& w : split(which)) {  // an unknown name is an error, not a silently shorter run
      bool known = w == "all" || w == "big" || w == "glm";
      for (const Shape& sh : kShapes) known = known || w == sh.name;
      if (!known) {
        std::string names;
        for (const Shape& sh : kShapes) names += " " + sh.name;
        std::fprintf(stderr, "%s: --shapes: unknown shape '%s' (groups: all big glm; shapes:%s)\n", argv[0], w.c_str(),
                     names.c_str());
        return 2;
      }
    }
    if (cuda_device_count() == 0) {
      std::printf("no CUDA GPU: %s\n", cuda_status_message().c_str());
      return 0;
    }
    cuda::CudaBackend be(0);
    cudaStream_t st = be.stream();
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    int driver = 0;
    cudaDriverGetVersion(&driver);
    WorkspacePlan plan;
    plan.max_tokens = *std::max_element(ms.begin(), ms.end());
    be.reserve_workspace(plan);
    cublasHandle_t h;
    check_cublas(cublasCreate(&h), "create");
    check_cublas(cublasSetStream(h, st), "stream");
    check_cublas(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "math mode");

    // The ceiling: a streaming read of 4 GiB.
    const int64_t rbytes = int64_t(4) << 30;
    void* rbuf = be.alloc(size_t(rbytes), "read buffer");
    auto* sink = static_cast<uint32_t*>(be.alloc(4, "sink"));
    bench::launch_fill(rbuf, rbytes / 4, 7, 0xffffffffu, 0, st);
    const double read_us =
        time_us(st, 3, 5, [&](int) {
          MMFP4_CUDA_CHECK(bench::launch_read(rbuf, rbytes, sink, prop.multiProcessorCount, st), "read");
        });
    const double read_tbs = double(rbytes) / (read_us * 1e-6) / 1e12;
    // The same read of one weight's bytes, a different region of the buffer each call (cold in L2), launched with PDL
    // as the linears are (sm_90): what a kernel that only streams that many bytes takes, launch and ramp included (the
    // ceiling at that size). Two ways: waiting for the previous launch before loading (a kernel whose reads need its
    // input), and loading first, waiting last (a kernel that requests its weights before the wait, gemv_whole_k.cu;
    // on the H100 7.0 against 8.5 us for 21.6 MB). Without PDL (before sm_90): plain launches, the same for both.
    const bool pdl = prop.major >= 9;
    auto read_at_size = [&](int64_t bytes, bench::ReadMode mode) {
      const int64_t stride = (bytes + (int64_t(1) << 20) - 1) & ~((int64_t(1) << 20) - 1);
      const int64_t regions = std::max<int64_t>(1, std::min<int64_t>(64, rbytes / stride));
      return time_us(st, 50, 5, [&](int i) {
        MMFP4_CUDA_CHECK(bench::launch_read(static_cast<char*>(rbuf) + (i % regions) * stride, bytes, sink,
                                            prop.multiProcessorCount, st, pdl ? mode : bench::ReadMode::Plain),
                         "read of ", bytes, " bytes");
      });
    };
    std::printf("device: %s, %d SMs, L2 %d MB, driver %d; streaming read %.2f TB/s (4 GiB)\n", prop.name,
                prop.multiProcessorCount, prop.l2CacheSize >> 20, driver, read_tbs);
    std::printf("%-20s %6s | %9s %8s %8s | %9s %8s %8s | %6s | %9s %6s | %9s %9s\n", "shape", "M", "mmfp4 us", "TB/s",
                "TFLOP/s", "cublas us", "TB/s", "TFLOP/s", "ratio", "x16 us", "ratio", "norm+lin", "fused");
    std::ostringstream js;
    js << "{\"device\": \"" << prop.name << "\", \"sms\": " << prop.multiProcessorCount << ", \"driver\": " << driver
       << ", \"read_tbs\": " << read_tbs << ", \"rows\": [";
    bool first = true;

    for (const Shape& sh : kShapes) {
      bool take = false;  // a group (all, big, glm) or a shape's name, each anywhere in the list
      for (auto& w : split(which))
        take = take || w == "all" || (w == "big" && sh.n * sh.k >= 40000000) ||
               (w == "glm" && sh.name.rfind("glm", 0) == 0) || w == sh.name;
      if (!take) continue;
      // One weight uploaded and repacked as at load; copies made on the device so that >= 300 MB rotate.
      HostWeight hw;
      std::vector<uint32_t> codes;
      std::vector<uint16_t> scales, dense;
      std::mt19937_64 rng(42);
      hw.name = sh.name;
      hw.n = sh.n;
      hw.k = sh.k;
      if (sh.f16) {
        hw.format = WeightFormat::Dense;
        hw.dtype = DType::F16;
        dense.resize(size_t(sh.n * sh.k));
        for (auto& v : dense) v = f32_to_f16(float(int(rng() % 2001) - 1000) * 1e-5f);
        hw.data = dense.data();
      } else {
        hw.format = WeightFormat::MMFP4;
        hw.k_stored = sh.k;
        hw.group_size = 128;
        codes.resize(size_t(sh.n * sh.k / 8));
        scales.resize(size_t(sh.n * sh.k / 128));
        for (auto& c : codes) c = uint32_t(rng());
        for (auto& s : scales) s = f32_to_f16(0.01f + float(rng() % 100) * 1e-4f);
        hw.codes = codes.data();
        hw.scales = scales.data();
      }
      std::vector<std::unique_ptr<LinearWeight>> copies;
      copies.push_back(be.upload_linear(hw));
      const int64_t wbytes = copies[0]->bytes;
      const int n_copies = force_copies > 0 ? force_copies
                                            : int(std::min<int64_t>(64, std::max<int64_t>(1, (int64_t(300) << 20) / wbytes + 1)));
      {
        const auto& src = static_cast<const cuda::CudaLinear&>(*copies[0]);
        for (int c = 1; c < n_copies; ++c) {
          auto cp = std::make_unique<cuda::CudaLinear>();
          cp->name = src.name;
          cp->n = src.n;
          cp->k = src.k;
          cp->format = src.format;
          cp->hadamard_block = src.hadamard_block;
          cp->k_stored = src.k_stored;
          cp->mma_ok = src.mma_ok;
          cp->gw = src.gw;
          cp->bytes = src.bytes;
          for (size_t i = 0; i < src.owned.size(); ++i) {
            const size_t b = i == 0 ? size_t(src.gw.kind == cuda::WKind::Fp4 ? src.gw.expert_stride * 16 : src.bytes)
                                    : size_t(src.gw.groups) * src.gw.n_tiles * 8 * 4;
            void* d = be.alloc(b, "weight copy");
            MMFP4_CUDA_CHECK(cudaMemcpyAsync(d, src.owned[i], b, cudaMemcpyDeviceToDevice, st), "copy");
            cp->owned.push_back(d);
            if (i == 0) cp->gw.data = d;
            else cp->gw.scales = static_cast<const uint32_t*>(d);
          }
          copies.push_back(std::move(cp));
        }
      }
      // cuBLAS BF16 weights [N, K] (same shape), rotating too.
      const int64_t bf_bytes = sh.n * sh.k * 2;
      const int n_bf = int(std::min<int64_t>(64, std::max<int64_t>(1, (int64_t(300) << 20) / bf_bytes + 1)));
      std::vector<void*> bfw;
      for (int c = 0; c < n_bf; ++c) {
        bfw.push_back(be.alloc(size_t(bf_bytes), "bf16 weight"));
        bench::launch_fill(bfw.back(), bf_bytes / 4, 100 + c, 0x81FF81FFu, 0x3C003C00u, st);
      }
      const double size_read_us = read_at_size(wbytes, bench::ReadMode::WaitFirst);
      const double early_read_us = read_at_size(wbytes, bench::ReadMode::Early);
      std::printf("%-20s  read of its %.1f MB alone%s: %.2f us = %.3f TB/s waiting first, %.2f us = %.3f TB/s loading "
                  "first (the ceilings at this size)\n",
                  sh.name.c_str(), double(wbytes) / 1e6, pdl ? " (PDL)" : "", size_read_us,
                  double(wbytes) / (size_read_us * 1e-6) / 1e12, early_read_us,
                  double(wbytes) / (early_read_us * 1e-6) / 1e12);
      for (int64_t M : ms) {
        auto* x = static_cast<float*>(be.alloc(size_t(M * sh.k * 4), "x"));
        auto* y = static_cast<float*>(be.alloc(size_t(M * sh.n * 4), "y"));
        void* xb = be.alloc(size_t(M * sh.k * 2), "x bf16");
        void* yb = be.alloc(size_t(M * sh.n * 2), "y bf16");
        bench::launch_fill(x, M * sh.k, 5, 0x807FFFFFu, 0x3F000000u, st);
        bench::launch_fill(xb, M * sh.k / 2, 6, 0x807F807Fu, 0x3F003F00u, st);
        const double flops = 2.0 * double(M) * double(sh.n) * double(sh.k);
        const int iters = quick ? 5 : std::max(5, int(std::min<double>(200, 2e12 / std::max(flops, 1e9))));
        const double us = time_us(st, iters, quick ? 3 : 7, [&](int i) {
          be.linear(Act(x, M, sh.k), *copies[size_t(i % n_copies)], Act(y, M, sh.n), false, false);
        });
        const float alpha = 1.0f, beta = 0.0f;
        const double cu = time_us(st, iters, quick ? 3 : 7, [&](int i) {
          check_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(sh.n), int(M), int(sh.k), &alpha,
                                    bfw[size_t(i % n_bf)], CUDA_R_16BF, int(sh.k), xb, CUDA_R_16BF, int(sh.k), &beta,
                                    yb, CUDA_R_16BF, int(sh.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       "gemm");
        });
        // From 16-bit activations (ld = K: every shape's K is a multiple of 64), and rmsnorm + linear without and
        // with the norm writing them (0: not on the cuBLAS path).
        double us16 = 0, pair_off = 0, pair_on = 0;
        if (M >= 128 && be.linear_16bit(static_cast<const uint16_t*>(xb), sh.k, M, *copies[0], Act(y, M, sh.n), false)) {
          us16 = time_us(st, iters, quick ? 3 : 7, [&](int i) {
            be.linear_16bit(static_cast<const uint16_t*>(xb), sh.k, M, *copies[size_t(i % n_copies)], Act(y, M, sh.n),
                            false);
          });
          auto* h = static_cast<float*>(be.alloc(size_t(M * sh.k * 4), "normed x"));
          auto* nw = static_cast<float*>(be.alloc(size_t(sh.k * 4), "norm weight"));
          bench::launch_fill(nw, sh.k, 8, 0x807FFFFFu, 0x3F000000u, st);
          const DeviceVector norm_w{nw, sh.k};
          pair_off = pair_on = 1e30;
          for (int rep = 0; rep < 4; ++rep) {  // alternated, the faster of two each: no order bias (clocks)
            const bool on = rep % 2 == 1;
            be.fast().norm_blas = on;
            double& best = on ? pair_on : pair_off;
            best = std::min(best, time_us(st, iters, quick ? 3 : 7, [&](int i) {
              be.rmsnorm(Act(x, M, sh.k), norm_w, 1e-5f, Act(h, M, sh.k));
              be.linear(Act(h, M, sh.k), *copies[size_t(i % n_copies)], Act(y, M, sh.n), false, false);
            }));
          }
          be.release(h);
          be.release(nw);
        }
        const double tbs = double(wbytes) / (us * 1e-6) / 1e12, tf = flops / (us * 1e-6) / 1e12;
        const double ctbs = double(bf_bytes) / (cu * 1e-6) / 1e12, ctf = flops / (cu * 1e-6) / 1e12;
        std::printf("%-20s %6lld | %9.2f %8.3f %8.2f | %9.2f %8.3f %8.2f | %6.2f", sh.name.c_str(), (long long)M, us, tbs,
                    tf, cu, ctbs, ctf, cu / us);
        if (us16 > 0) std::printf(" | %9.2f %6.2f | %9.2f %9.2f\n", us16, cu / us16, pair_off, pair_on);
        else std::printf(" |\n");
        std::fflush(stdout);
        js << (first ? "" : ",") << "\n  {\"shape\": \"" << sh.name << "\", \"n\": " << sh.n << ", \"k\": " << sh.k
           << ", \"m\": " << M << ", \"weight_bytes\": " << wbytes << ", \"us\": " << us << ", \"tbs\": " << tbs
           << ", \"tflops\": " << tf << ", \"cublas_bf16_us\": " << cu << ", \"cublas_tflops\": " << ctf
           << ", \"speedup_vs_cublas\": " << cu / us << ", \"read_us_at_size\": " << size_read_us
           << ", \"read_early_us_at_size\": " << early_read_us;
        if (us16 > 0)
          js << ", \"x16_us\": " << us16 << ", \"x16_speedup_vs_cublas\": " << cu / us16
             << ", \"norm_linear_us\": " << pair_off << ", \"norm_linear_fused_us\": " << pair_on;
        js << "}";
        first = false;
        be.release(x);
        be.release(y);
        be.release(xb);
        be.release(yb);
      }
      for (void* p : bfw) be.release(p);
    }
    js << "\n]}\n";
    if (!out_path.empty()) std::ofstream(out_path) << js.str();
    cublasDestroy(h);
    be.release(rbuf);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_linear: %s\n", e.what());
    return 1;
  }
}
