#include "backend/cpu/cpu_isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace mmfp4 {

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = true;  // no __builtin_cpu_supports name; every AVX2 CPU that exists has it and the build requires it
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  return f;
}

CpuIsa choose_isa(const CpuFeatures& f, const char* request) {
  const std::string want = request ? request : "";
  if (!f.avx2 || !f.fma) fail("this CPU lacks AVX2/FMA, which this build of mmfp4 requires");
  if (want.empty() || want == "best") return f.has_avx512() ? CpuIsa::Avx512 : CpuIsa::Avx2;
  if (want == "avx2") return CpuIsa::Avx2;
  if (want == "avx512") {
    if (!f.has_avx512()) fail("MMFP4_CPU_ISA=avx512: this CPU lacks AVX-512 F/BW/VL/DQ");
    return CpuIsa::Avx512;
  }
  fail("MMFP4_CPU_ISA='", want, "': expected avx2, avx512 or best");
}

CpuIsa runtime_isa() {
  static const CpuIsa isa = choose_isa(detect_cpu_features(), std::getenv("MMFP4_CPU_ISA"));
  return isa;
}

const char* isa_name(CpuIsa isa) { return isa == CpuIsa::Avx512 ? "avx512" : "avx2"; }

std::string cpu_model_name() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) return "unknown CPU";
  char line[512];
  std::string name = "unknown CPU";
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) == 0) {
      const char* c = std::strchr(line, ':');
      if (c) {
        name = c + 1;
        while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.erase(name.begin());
        while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
      }
      break;
    }
  }
  std::fclose(f);
  return name;
}

}  // namespace mmfp4
