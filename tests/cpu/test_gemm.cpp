// The GEMM kernels (fused and packed paths, AVX2 and AVX-512 where the CPU has it) against gemm_model(), the plain-
// loop statement of their arithmetic, bit for bit; and gemm_model() against the format's reference dequantization
// (HostWeight::dequantize, independent code) within a float32 error bound. Awkward shapes throughout: M = 1, 3, 4,
// 5, 17, 64; N off the 64-row panel; K of 1..many groups; group sizes 32, 64, 128; dense K not a multiple of 8.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "backend/cpu/cpu_gemm.h"
#include "backend/cpu/packed_weight.h"
#include "cpu_test_util.h"

namespace mmfp4::testing {
namespace {

struct Packed {
  std::unique_ptr<uint8_t, void (*)(void*)> mem{nullptr, std::free};
  PackedWeight w;
};

Packed pack(const HostWeight& hw) {
  Packed p;
  const PackedWeight shape = packed_shape(hw);
  p.mem.reset(static_cast<uint8_t*>(std::aligned_alloc(64, size_t(std::max<int64_t>(64, (shape.bytes() + 63) / 64 * 64)))));
  p.w = pack_weight(hw, p.mem.get());
  return p;
}

struct Shape {
  int64_t n, k;
  int group;  // 0: dense
  DType dt = DType::F32;
};

std::string describe(const Shape& s) {
  return "N=" + std::to_string(s.n) + " K=" + std::to_string(s.k) +
         (s.group ? " G=" + std::to_string(s.group) : " dense " + std::string(dtype_name(s.dt)));
}

TestWeight make(const Shape& s, uint64_t seed) {
  return s.group ? random_mmfp4(s.n, s.k, s.group, seed) : random_dense(s.n, s.k, s.dt, seed);
}

const std::vector<Shape> kShapes = {
    {1, 128, 128},   {17, 128, 32},   {64, 256, 64},    {100, 384, 128}, {130, 96, 32},
    {256, 1024, 128}, {33, 64, 64},   {64, 2048, 128},  {7, 40, 8},
    {65, 37, 0, DType::F32}, {64, 100, 0, DType::F16}, {129, 64, 0, DType::BF16}, {3, 8, 0, DType::F16},
};
const std::vector<int64_t> kRows = {1, 3, 4, 5, 17, 64};

TEST(CpuGemm, PackedRowIsTheReferenceDequantization) {
  for (const Shape& s : kShapes) {
    TestWeight t = make(s, 11);
    Packed p = pack(t.hw);
    std::vector<float> a(size_t(s.k)), b(size_t(s.k));
    for (int64_t r = 0; r < s.n; ++r) {
      packed_row(p.w, r, a.data());
      t.hw.dequantize_row(r, b.data());
      for (int64_t k = 0; k < s.k; ++k) ASSERT_TRUE(same_bits(a[size_t(k)], b[size_t(k)]) || (a[size_t(k)] == 0 && b[size_t(k)] == 0))
          << describe(s) << " row " << r << " k " << k << ": " << a[size_t(k)] << " vs " << b[size_t(k)];
    }
  }
}

TEST(CpuGemm, ModelMatchesFloat64ReferenceWithinFloat32Bound) {
  for (const Shape& s : kShapes) {
    TestWeight t = make(s, 21);
    Packed p = pack(t.hw);
    const std::vector<float> W = t.hw.dequantize();  // [n, k]
    const int64_t M = 5;
    const auto x = random_x(M, s.k, 22);
    std::vector<float> y(size_t(M * s.n));
    gemm_model(x.data(), s.k, M, p.w, 0, s.n, y.data(), s.n, false);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < s.n; ++j) {
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < s.k; ++k) {
          ref += double(x[size_t(i * s.k + k)]) * W[size_t(j * s.k + k)];
          mag += std::fabs(double(x[size_t(i * s.k + k)]) * W[size_t(j * s.k + k)]);
        }
        const double got = y[size_t(i * s.n + j)];
        ASSERT_TRUE(std::isfinite(got));
        // Serial float32 accumulation: error <= ~(k + groups) * 2^-24 * sum |x w|.
        ASSERT_LE(std::fabs(got - ref), (double(s.k) + 8) * 6e-8 * mag + 1e-30) << describe(s) << " (" << i << "," << j << ")";
      }
  }
}

// Every ISA, both paths, every M, row sub-ranges, accumulate on and off: bit-identical to gemm_model.
TEST(CpuGemm, KernelsAreBitExactAgainstModel) {
  ThreadPool pool(2);
  for (CpuIsa isa : available_isas()) {
    const CpuKernels& kr = cpu_kernels(isa);
    for (const Shape& s : kShapes) {
      TestWeight t = make(s, 31 + uint64_t(s.n));
      Packed p = pack(t.hw);
      for (int64_t M : kRows) {
        const auto x = random_x(M, s.k + 3, uint64_t(M * 7 + s.k));  // stride k + 3: rows are not contiguous
        for (int path = 0; path < 2; ++path) {
          GemmTuning tune;
          tune.fused_max_rows = path == 0 ? 1 << 20 : 0;  // force fused / packed
          tune.kc = 64;                                     // several k-blocks even on small K
          GemmWorkspace ws;
          const std::vector<std::pair<int64_t, int64_t>> ranges = {
              {0, s.n}, {s.n / 3, s.n - s.n / 3 - s.n / 5}, {s.n - 1, 1}};
          for (auto [row0, rows] : ranges) {
            if (rows <= 0) continue;
            for (bool acc : {false, true}) {
              std::vector<float> got(size_t(M * (rows + 2)), 0.25f), want = got;
              Act xa(const_cast<float*>(x.data()), M, s.k, s.k + 3);
              Act oa(got.data(), M, rows, rows + 2);
              gemm(kr, pool, ws, tune, xa, p.w, row0, rows, oa, acc);
              gemm_model(x.data(), s.k + 3, M, p.w, row0, rows, want.data(), rows + 2, acc);
              for (size_t i = 0; i < got.size(); ++i)
                ASSERT_TRUE(same_bits(got[i], want[i]))
                    << isa_name(isa) << (path ? " packed " : " fused ") << describe(s) << " M=" << M << " rows ["
                    << row0 << "," << row0 + rows << ") acc=" << acc << " at " << i << ": " << got[i] << " vs "
                    << want[i];
            }
          }
        }
      }
    }
  }
}

TEST(CpuGemm, NaNInInputShowsUpInOutput) {
  ThreadPool pool(2);
  for (CpuIsa isa : available_isas()) {
    TestWeight t = random_mmfp4(64, 256, 128, 5);
    for (auto& sc : t.scales) sc = 0x3c00;  // no zero scales: NaN * 0 must still be NaN, but make it obvious
    Packed p = pack(t.hw);
    auto x = random_x(3, 256, 6);
    x[100] = NAN;
    std::vector<float> y(3 * 64);
    GemmWorkspace ws;
    gemm(cpu_kernels(isa), pool, ws, GemmTuning{}, Act(x.data(), 3, 256), p.w, 0, 64, Act(y.data(), 3, 64), false);
    for (int j = 0; j < 64; ++j) EXPECT_TRUE(std::isnan(y[size_t(j)])) << isa_name(isa) << " column " << j;
    EXPECT_FALSE(std::isnan(y[64]));
  }
}

}  // namespace
}  // namespace mmfp4::testing
