// MMFP4_CUDA_PROFILE=1: per-kernel time totals (check.h). Each launch is synchronised, so a step runs slower; the
// totals say which kernels dominate, not the step's real time (graph replay with PDL overlaps launches).
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <vector>
#include <mutex>
#include <string>

#include "backend/cuda/check.h"
#include "core/env.h"

namespace mmfp4::cuda {

namespace {
struct Totals {
  std::mutex m;
  std::map<std::string, std::pair<double, long>> by_kernel;  // key: the launch's message (kernel and shapes)
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  ~Totals() {
    if (by_kernel.empty()) return;
    std::vector<std::pair<double, std::string>> rows;
    for (auto& [k, v] : by_kernel) rows.push_back({v.first, k});
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "---- MMFP4_CUDA_PROFILE: synchronised time per kernel and shape (us total, calls, us each)\n");
    for (size_t i = 0; i < rows.size() && i < 60; ++i) {
      const auto& v = by_kernel[rows[i].second];
      std::fprintf(stderr, "%12.1f %6ld %8.2f  %s\n", v.first, v.second, v.first / double(v.second),
                   rows[i].second.c_str());
    }
  }
};
Totals& totals() {
  static Totals t;
  return t;
}
}  // namespace

bool profiling() {
  static const bool on = env_bool("MMFP4_CUDA_PROFILE").value_or(false);
  return on;
}

bool& capture_in_progress() {
  static bool c = false;
  return c;
}

void profile_launch(const std::string& what) {
  cudaDeviceSynchronize();
  Totals& t = totals();
  std::lock_guard<std::mutex> lock(t.m);
  const auto now = std::chrono::steady_clock::now();
  const double us = std::chrono::duration<double, std::micro>(now - t.last).count();
  t.last = now;
  auto& v = t.by_kernel[what];
  v.first += us;
  v.second += 1;
}

}  // namespace mmfp4::cuda
