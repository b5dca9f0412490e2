// Which SIMD kernels the CPU backend runs. AVX2 + FMA + F16C is the baseline every build requires (CMakeLists.txt
// compiles everything with it); the AVX-512 kernels (F, BW, VL, DQ) are compiled into the same binary with function
// target attributes and chosen at run time from cpuid, which libgcc checks together with the OS's saving of the
// zmm state. MMFP4_CPU_ISA=avx2 forces the baseline on an AVX-512 machine so both paths can be tested and timed
// on one host; asking for an ISA the CPU lacks is an error, never a silent downgrade.
#pragma once

#include <string>

namespace mmfp4 {

enum class CpuIsa { Avx2, Avx512 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool has_avx512() const { return avx512f && avx512bw && avx512vl && avx512dq; }
};

CpuFeatures detect_cpu_features();

// The ISA to run on a CPU with features `f`: the best one unless `request` ("avx2", "avx512"; null or "" = best)
// asks for another. Throws mmfp4::Error for an unknown name or an ISA the CPU lacks.
CpuIsa choose_isa(const CpuFeatures& f, const char* request);

// choose_isa(detect_cpu_features(), getenv("MMFP4_CPU_ISA")), computed once.
CpuIsa runtime_isa();

const char* isa_name(CpuIsa isa);

// "AMD EPYC 9554 64-Core Processor" (from /proc/cpuinfo; "unknown CPU" when unreadable).
std::string cpu_model_name();

}  // namespace mmfp4
