// Run-time ISA choice: the best the CPU has, lowered on request, refused when asked for more than it has.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_isa.h"
#include "core/error.h"

namespace mmfp4::testing {
namespace {

CpuFeatures avx2_only() {
  CpuFeatures f;
  f.avx2 = f.fma = f.f16c = true;
  return f;
}
CpuFeatures with_avx512() {
  CpuFeatures f = avx2_only();
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = true;
  return f;
}

TEST(CpuIsa, ChoosesBestAndHonoursRequests) {
  EXPECT_EQ(choose_isa(avx2_only(), nullptr), CpuIsa::Avx2);
  EXPECT_EQ(choose_isa(avx2_only(), ""), CpuIsa::Avx2);
  EXPECT_EQ(choose_isa(with_avx512(), nullptr), CpuIsa::Avx512);
  EXPECT_EQ(choose_isa(with_avx512(), "best"), CpuIsa::Avx512);
  EXPECT_EQ(choose_isa(with_avx512(), "avx2"), CpuIsa::Avx2);
  EXPECT_EQ(choose_isa(with_avx512(), "avx512"), CpuIsa::Avx512);
  EXPECT_THROW(choose_isa(avx2_only(), "avx512"), Error);
  EXPECT_THROW(choose_isa(with_avx512(), "sse2"), Error);
  CpuFeatures partial = avx2_only();
  partial.avx512f = true;  // F without BW/VL/DQ (Xeon Phi): not enough for our kernels
  EXPECT_EQ(choose_isa(partial, nullptr), CpuIsa::Avx2);
  CpuFeatures none;
  EXPECT_THROW(choose_isa(none, nullptr), Error);
}

TEST(CpuIsa, DetectsThisMachine) {
  const CpuFeatures f = detect_cpu_features();
  EXPECT_TRUE(f.avx2 && f.fma);
  std::printf("  this CPU: %s; AVX-512 F/BW/VL/DQ %s, VNNI %s; kernels run: %s\n", cpu_model_name().c_str(),
              f.has_avx512() ? "yes" : "no", f.avx512vnni ? "yes" : "no", isa_name(runtime_isa()));
}

}  // namespace
}  // namespace mmfp4::testing
