// Every fast CPU backend op against the reference backend (MMFP4_CPU_REF), on fresh random data and awkward shapes,
// for each ISA this CPU runs; every op's batch independence (a row computed with others is bit-identical to the row
// alone); and that a warmed-up decode-sized call allocates no memory at all.
// The counting operator new below frees with std::free; GCC cannot see they pair up.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fwht.h"
#include "backend/cpu/simd_util.h"
#include "cpu_test_util.h"

// Heap allocations made by this test binary while g_count_allocs is set.
static std::atomic<bool> g_count_allocs{false};
static std::atomic<int64_t> g_allocs{0};
void* operator new(size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace mmfp4::testing {
namespace {

using Mat = std::vector<float>;

// max |a - b| over max |b| (NaN/Inf in a never pass).
double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}
double rel_err(const Mat& a, const Mat& b) { return rel_err(a.data(), b.data(), a.size()); }

bool bit_equal(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!same_bits(a[i], b[i])) return false;
  return true;
}

// A reference backend and one fast backend per ISA.
struct Backends {
  std::unique_ptr<CpuBackend> ref;
  std::vector<std::unique_ptr<CpuBackend>> fast;
  Backends() {
    ref = std::make_unique<CpuBackend>(CpuOptions{0, 1, nullptr});
    for (CpuIsa isa : available_isas()) fast.push_back(std::make_unique<CpuBackend>(CpuOptions{0, 0, isa_name(isa)}));
  }
};

std::string tag(const CpuBackend& b) { return b.name(); }

// ---------------------------------------------------------------------------------------------------------------
// Linear layers
// ---------------------------------------------------------------------------------------------------------------

struct LinearCase {
  int64_t n, k, k_stored;
  int group;     // 0: dense
  int hadamard;  // rotation block (MMFP4)
  DType dt = DType::F32;
};

TEST(CpuOps, LinearMatchesReferenceAndIsBatchIndependent) {
  Backends B;
  const std::vector<LinearCase> cases = {
      {100, 128, 128, 128, 0},   {64, 256, 256, 32, 0},    {130, 100, 128, 64, 64},   {17, 512, 512, 128, 64},
      {300, 192, 192, 64, 64},   {33, 96, 128, 32, 128},   {65, 37, 37, 0, 0, DType::F16},
      {64, 64, 64, 0, 0, DType::BF16}, {10, 300, 300, 0, 0, DType::F32},
  };
  for (const LinearCase& c : cases) {
    TestWeight t = c.group ? random_mmfp4(c.n, c.k_stored, c.group, uint64_t(c.n * 31 + c.k), c.hadamard, c.k)
                           : random_dense(c.n, c.k, c.dt, uint64_t(c.n + c.k));
    auto wr = B.ref->upload_linear(t.hw);
    for (auto& fb : B.fast) {
      auto wf = fb->upload_linear(t.hw);
      for (int64_t M : {1, 3, 4, 5, 17, 64}) {
        const Mat x = random_x(M, c.k, uint64_t(M + c.n));
        for (bool acc : {false, true}) {
          Mat yr(size_t(M * c.n), 0.5f), yf = yr;
          B.ref->linear(Act(const_cast<float*>(x.data()), M, c.k), *wr, Act(yr.data(), M, c.n), acc, false);
          fb->linear(Act(const_cast<float*>(x.data()), M, c.k), *wf, Act(yf.data(), M, c.n), acc, false);
          // Both sum in float32 in different orders: per row, the error scale is sum |x| |w| (not |y|).
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < c.n; ++j) {
              const float a = yf[size_t(i * c.n + j)], b = yr[size_t(i * c.n + j)];
              ASSERT_TRUE(std::isfinite(a));
              ASSERT_NEAR(a, b, 2e-5 * (std::fabs(b) + 1.0)) << tag(*fb) << " n=" << c.n << " k=" << c.k << " M=" << M;
            }
          // Each row alone gives the same bits as inside the batch (decode == prefill row).
          for (int64_t i : {int64_t(0), M - 1}) {
            Mat y1(size_t(c.n), 0.5f);
            fb->linear(Act(const_cast<float*>(x.data()) + i * c.k, 1, c.k), *wf, Act(y1.data(), 1, c.n), acc, false);
            ASSERT_TRUE(bit_equal(y1.data(), yf.data() + i * c.n, size_t(c.n)))
                << tag(*fb) << " row " << i << " of " << M << " n=" << c.n << " k=" << c.k;
          }
        }
      }
    }
  }
}

TEST(CpuOps, EmbedMatchesReference) {
  Backends B;
  for (int hb : {0, 64}) {
    TestWeight t = random_mmfp4(200, 128, 32, 3, hb, hb ? 100 : 128);
    auto wr = B.ref->upload_linear(t.hw);
    std::vector<int32_t> ids = {0, 199, 5, 5, 77};
    BatchMeta b;
    b.n_tokens = int64_t(ids.size());
    b.tokens = ids.data();
    Mat yr(ids.size() * size_t(t.hw.k)), yf = yr;
    B.ref->embed(*wr, b, Act(yr.data(), b.n_tokens, t.hw.k));
    for (auto& fb : B.fast) {
      auto wf = fb->upload_linear(t.hw);
      fb->embed(*wf, b, Act(yf.data(), b.n_tokens, t.hw.k));
      EXPECT_LT(rel_err(yf, yr), 1e-6) << tag(*fb);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------------------------

TEST(CpuOps, ElementwiseMatchReference) {
  Backends B;
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t cols : {8, 37, 256, 1000}) {
      Mat x = random_x(rows, cols, uint64_t(rows * cols));
      Mat up = random_x(rows, cols, uint64_t(rows + cols));
      std::vector<float> wv(static_cast<size_t>(cols));
      for (int64_t c = 0; c < cols; ++c) wv[size_t(c)] = 0.5f + float(c % 7) * 0.1f;
      DeviceVector w{wv.data(), cols};
      for (auto& fb : B.fast) {
        Mat a(x.size()), b(x.size());
        B.ref->rmsnorm(Act(x.data(), rows, cols), w, 1e-6f, Act(a.data(), rows, cols));
        fb->rmsnorm(Act(x.data(), rows, cols), w, 1e-6f, Act(b.data(), rows, cols));
        EXPECT_LT(rel_err(b, a), 1e-6) << "rmsnorm " << rows << "x" << cols;
        // silu * up, including large |gate| (exp clamps where std::exp overflows: -0 becomes ~1e-37)
        Mat g = x;
        g[0] = 100.f;
        if (g.size() > 1) g[1] = -100.f;
        B.ref->silu_mul(Act(g.data(), rows, cols), Act(up.data(), rows, cols), Act(a.data(), rows, cols));
        fb->silu_mul(Act(g.data(), rows, cols), Act(up.data(), rows, cols), Act(b.data(), rows, cols));
        for (size_t i = 0; i < a.size(); ++i)
          ASSERT_NEAR(b[i], a[i], 3e-7 * std::fabs(a[i]) + 1e-30) << "silu_mul at " << i << " gate " << g[i];
      }
    }
  }
  // NaN propagates through silu and rmsnorm.
  Mat g(16, 1.0f), up(16, 1.0f), o(16);
  g[3] = NAN;
  B.fast[0]->silu_mul(Act(g.data(), 1, 16), Act(up.data(), 1, 16), Act(o.data(), 1, 16));
  EXPECT_TRUE(std::isnan(o[3]));
  EXPECT_FALSE(std::isnan(o[4]));
}

TEST(CpuOps, HadamardIsBitExactAgainstScalarTransform) {
  for (int n : {1, 2, 4, 8, 16, 32, 64, 128, 256}) {
    Mat x = random_x(1, n, uint64_t(n)), y = x;
    fwht_inplace(x.data(), n);
    fwht_vec(y.data(), n);
    EXPECT_TRUE(bit_equal(y.data(), x.data(), size_t(n))) << "n=" << n;
  }
}

TEST(CpuOps, ExpIsAccurate) {
  double worst = 0;
  for (float v = -87.0f; v < 88.0f; v += 0.0137f) {
    const double e = std::exp(double(v)), got = exp_scalar(v);
    worst = std::max(worst, std::fabs(got - e) / e);
  }
  EXPECT_LT(worst, 3e-7);  // ~2.5 ulp
  EXPECT_EQ(exp_scalar(0.0f), 1.0f);
  EXPECT_TRUE(std::isnan(exp_scalar(NAN)));
  EXPECT_GT(exp_scalar(-1000.f), 0.f);  // clamped, not zero or NaN
  EXPECT_TRUE(std::isfinite(exp_scalar(1000.f)));
}

struct RopeSetup {
  std::vector<float> cos, sin;
  RopeTable table;
  RopeSetup(int64_t positions, int dim, bool interleaved) {
    cos.resize(size_t(positions * dim / 2));
    sin.resize(cos.size());
    for (int64_t p = 0; p < positions; ++p)
      for (int i = 0; i < dim / 2; ++i) {
        const double th = double(p) * std::pow(10000.0, -2.0 * i / dim);
        cos[size_t(p * dim / 2 + i)] = float(std::cos(th));
        sin[size_t(p * dim / 2 + i)] = float(std::sin(th));
      }
    table = RopeTable{cos.data(), sin.data(), positions, dim, interleaved};
  }
};

TEST(CpuOps, RopeMatchesReference) {
  Backends B;
  for (int dim : {8, 32, 64, 96, 6}) {
    for (bool inter : {false, true}) {
      RopeSetup rs(64, dim, inter);
      const int64_t T = 5, heads = 3, stride = dim + 16, off = 8;
      std::vector<int32_t> pos = {0, 1, 63, 17, 2};
      BatchMeta b;
      b.n_tokens = T;
      b.h_positions = pos.data();
      const Mat x0 = random_x(T, heads * stride + off, uint64_t(dim));
      Mat a = x0, c = x0;
      B.ref->rope(Act(a.data(), T, heads * stride + off), heads, stride, off, rs.table, b);
      for (auto& fb : B.fast) {
        c = x0;
        fb->rope(Act(c.data(), T, heads * stride + off), heads, stride, off, rs.table, b);
        EXPECT_LT(rel_err(c, a), 1e-6) << "dim " << dim << " interleaved " << inter;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Attention over a paged cache
// ---------------------------------------------------------------------------------------------------------------

// Sequences of given lengths in a block pool whose blocks are handed out in a scrambled order; queries are the
// given (sequence, position) pairs.
struct Paged {
  int64_t block = 4, width;
  std::vector<float> cache;
  std::vector<std::vector<int32_t>> tables;
  std::vector<int32_t> pos, seq, slots, bt;
  int64_t max_blocks = 0;
  BatchMeta meta;

  Paged(const std::vector<int64_t>& lengths, int64_t w, const std::vector<std::pair<int32_t, int32_t>>& queries,
        uint64_t seed)
      : width(w) {
    int64_t total = 0;
    for (int64_t L : lengths) total += (L + block - 1) / block;
    std::vector<int32_t> ids(static_cast<size_t>(total));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 7 + 3) % ids.size());  // scrambled, distinct
    if (total > 0 && std::gcd<int64_t>(7, total) != 1)
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(ids.size() - 1 - i);
    size_t next = 0;
    for (int64_t L : lengths) {
      tables.emplace_back();
      for (int64_t j = 0; j < (L + block - 1) / block; ++j) tables.back().push_back(ids[next++]);
      max_blocks = std::max<int64_t>(max_blocks, int64_t(tables.back().size()));
    }
    cache = random_x(total * block, width, seed);
    for (auto [s, p] : queries) {
      seq.push_back(s);
      pos.push_back(p);
      const auto& tb = tables[size_t(s)];
      slots.push_back(int32_t(tb[size_t(p / block)] * block + p % block));
    }
    bt.assign(size_t(int64_t(lengths.size()) * max_blocks), -1);
    for (size_t s = 0; s < tables.size(); ++s)
      for (size_t j = 0; j < tables[s].size(); ++j) bt[s * size_t(max_blocks) + j] = tables[s][j];
    meta.n_tokens = int64_t(queries.size());
    meta.n_seqs = int64_t(lengths.size());
    meta.max_blocks = max_blocks;
    meta.h_positions = pos.data();
    meta.h_seq = seq.data();
    meta.h_slots = slots.data();
    meta.h_block_tables = bt.data();
  }
  KVLayerView view() { return KVLayerView{cache.data(), DType::F32, block, width}; }
};

const std::vector<std::pair<int32_t, int32_t>> kQueries = {{0, 0}, {1, 12}, {0, 1}, {2, 40}, {1, 13}, {2, 3}};

TEST(CpuOps, GqaAttentionMatchesReferenceAndIsBatchIndependent) {
  Backends B;
  for (auto [heads, kvh, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{8, 2, 32}, {4, 4, 64}, {6, 1, 20}}) {
    Paged pg({2, 14, 41}, 2 * kvh * D, kQueries, uint64_t(D));
    const int64_t T = pg.meta.n_tokens;
    const Mat q = random_x(T, heads * D, 9);
    Mat a(size_t(T * heads * D)), c = a;
    const float scale = 1.0f / std::sqrt(float(D));
    B.ref->attention(Act(const_cast<float*>(q.data()), T, heads * D), pg.view(), heads, kvh, D, scale, pg.meta,
                     Act(a.data(), T, heads * D));
    for (auto& fb : B.fast) {
      fb->attention(Act(const_cast<float*>(q.data()), T, heads * D), pg.view(), heads, kvh, D, scale, pg.meta,
                    Act(c.data(), T, heads * D));
      EXPECT_LT(rel_err(c, a), 2e-6) << "heads " << heads << "/" << kvh << " D " << D;
      // Query t alone.
      for (int64_t t = 0; t < T; ++t) {
        BatchMeta one = pg.meta;
        one.n_tokens = 1;
        one.h_positions = pg.pos.data() + t;
        one.h_seq = pg.seq.data() + t;
        Mat o(size_t(heads * D));
        fb->attention(Act(const_cast<float*>(q.data()) + t * heads * D, 1, heads * D), pg.view(), heads, kvh, D, scale,
                      one, Act(o.data(), 1, heads * D));
        ASSERT_TRUE(bit_equal(o.data(), c.data() + t * heads * D, size_t(heads * D))) << "query " << t;
      }
    }
  }
}

TEST(CpuOps, MlaAttentionMatchesReferenceAndIsBatchIndependent) {
  Backends B;
  for (auto [heads, R, P] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{4, 128, 32}, {20, 64, 16}, {3, 40, 8}}) {
    Paged pg({2, 14, 41}, R + P, kQueries, uint64_t(R));
    const int64_t T = pg.meta.n_tokens;
    const Mat ql = random_x(T * heads, R, 1), qp = random_x(T * heads, P, 2);
    Mat a(size_t(T * heads * R)), c = a;
    B.ref->mla_attention(Act(const_cast<float*>(ql.data()), T * heads, R), Act(const_cast<float*>(qp.data()), T * heads, P),
                         pg.view(), heads, 0.1f, pg.meta, Act(a.data(), T * heads, R));
    for (auto& fb : B.fast) {
      fb->mla_attention(Act(const_cast<float*>(ql.data()), T * heads, R), Act(const_cast<float*>(qp.data()), T * heads, P),
                        pg.view(), heads, 0.1f, pg.meta, Act(c.data(), T * heads, R));
      EXPECT_LT(rel_err(c, a), 2e-6) << "heads " << heads << " R " << R;
      for (int64_t t = 0; t < T; ++t) {
        BatchMeta one = pg.meta;
        one.n_tokens = 1;
        one.h_positions = pg.pos.data() + t;
        one.h_seq = pg.seq.data() + t;
        Mat o(size_t(heads * R));
        fb->mla_attention(Act(const_cast<float*>(ql.data()) + t * heads * R, heads, R),
                          Act(const_cast<float*>(qp.data()) + t * heads * P, heads, P), pg.view(), heads, 0.1f, one,
                          Act(o.data(), heads, R));
        ASSERT_TRUE(bit_equal(o.data(), c.data() + t * heads * R, size_t(heads * R))) << "query " << t;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MLA absorb / expand on kv_b_proj
// ---------------------------------------------------------------------------------------------------------------

TEST(CpuOps, MlaAbsorbAndExpandMatchReference) {
  Backends B;
  struct C {
    int64_t heads, nope, v, R;
    int group, hadamard;
  };
  for (const C& c : std::vector<C>{{4, 64, 64, 128, 128, 0},
                                    {4, 64, 64, 128, 64, 64},
                                    {3, 32, 48, 256, 32, 0},
                                    {2, 24, 40, 64, 32, 0},    // not a multiple of 16 rows: fallback paths
                                    {5, 192, 128, 512, 128, 64}}) {
    TestWeight t = random_mmfp4(c.heads * (c.nope + c.v), c.R, c.group, uint64_t(c.nope * 3 + c.R), c.hadamard);
    auto wr = B.ref->upload_linear(t.hw);
    for (auto& fb : B.fast) {
      auto wf = fb->upload_linear(t.hw);
      for (int64_t T : {1, 3, 6}) {
        const Mat qn = random_x(T * c.heads, c.nope, uint64_t(T));
        Mat a(size_t(T * c.heads * c.R)), b = a;
        B.ref->mla_absorb_q(Act(const_cast<float*>(qn.data()), T * c.heads, c.nope), *wr, c.heads, c.nope, c.v,
                            Act(a.data(), T * c.heads, c.R));
        fb->mla_absorb_q(Act(const_cast<float*>(qn.data()), T * c.heads, c.nope), *wf, c.heads, c.nope, c.v,
                         Act(b.data(), T * c.heads, c.R));
        for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i], 2e-5 * (std::fabs(a[i]) + 1)) << "absorb " << i;
        Mat one(size_t(c.heads * c.R));
        fb->mla_absorb_q(Act(const_cast<float*>(qn.data()) + (T - 1) * c.heads * c.nope, c.heads, c.nope), *wf, c.heads,
                         c.nope, c.v, Act(one.data(), c.heads, c.R));
        ASSERT_TRUE(bit_equal(one.data(), b.data() + (T - 1) * c.heads * c.R, one.size())) << "absorb batch";

        const Mat ol = random_x(T * c.heads, c.R, uint64_t(T + 5));
        Mat e(size_t(T * c.heads * c.v)), f = e;
        B.ref->mla_expand_v(Act(const_cast<float*>(ol.data()), T * c.heads, c.R), *wr, c.heads, c.nope, c.v,
                            Act(e.data(), T * c.heads, c.v));
        fb->mla_expand_v(Act(const_cast<float*>(ol.data()), T * c.heads, c.R), *wf, c.heads, c.nope, c.v,
                         Act(f.data(), T * c.heads, c.v));
        for (size_t i = 0; i < e.size(); ++i) ASSERT_NEAR(f[i], e[i], 2e-5 * (std::fabs(e[i]) + 1)) << "expand " << i;
        Mat one_v(size_t(c.heads * c.v));
        fb->mla_expand_v(Act(const_cast<float*>(ol.data()), c.heads, c.R), *wf, c.heads, c.nope, c.v,
                         Act(one_v.data(), c.heads, c.v));
        ASSERT_TRUE(bit_equal(one_v.data(), f.data(), one_v.size())) << "expand batch";
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MoE
// ---------------------------------------------------------------------------------------------------------------

TEST(CpuOps, MoeRouteMatchesReference) {
  Backends B;
  for (bool sig : {false, true})
  for (bool shared : {false, true}) {  // the shared expert as one more slot (RouterParams::shared_id)
    for (auto [E, K0, groups, topg] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {8, 2, 1, 1}, {64, 4, 1, 1}, {64, 6, 8, 3}, {20, 3, 4, 2}, {7, 7, 1, 1}}) {
      RouterParams p;
      p.sigmoid = sig;
      p.n_experts = E;
      p.top_k = K0;
      if (shared) p.shared_id = E;
      const int64_t K = p.slots();
      p.n_group = groups;
      p.topk_group = topg;
      p.norm_topk_prob = true;
      p.routed_scaling_factor = 1.8f;
      const int64_t T = 9;
      Mat z = random_x(T, E, uint64_t(E * K));
      z[3] = z[4];  // a tie
      std::vector<float> bias(static_cast<size_t>(E));
      for (int64_t e = 0; e < E; ++e) bias[size_t(e)] = 0.01f * float(e % 5);
      DeviceVector bv{bias.data(), E};
      std::vector<int32_t> ir(size_t(T * K)), jf = ir;
      Mat wr(size_t(T * K)), wf = wr;
      B.ref->moe_route(Act(z.data(), T, E), sig ? &bv : nullptr, p, ir.data(), wr.data());
      for (int64_t t = 0; t < T && shared; ++t) {
        EXPECT_EQ(ir[size_t(t * K + K0)], E) << "shared slot of token " << t;
        EXPECT_EQ(wr[size_t(t * K + K0)], 1.0f) << "shared slot of token " << t;
      }
      for (auto& fb : B.fast) {
        fb->moe_route(Act(z.data(), T, E), sig ? &bv : nullptr, p, jf.data(), wf.data());
        EXPECT_EQ(jf, ir) << "E " << E << " K " << K << " sigmoid " << sig;
        EXPECT_LT(rel_err(wf, wr), 1e-6);
      }
    }
  }
}

TEST(CpuOps, MoeExpertsMatchReferenceAndIsBatchIndependent) {
  Backends B;
  for (int hb : {0, 64}) {
    const int64_t E = 8, H = 128, I = 192, K = 3;
    std::vector<TestWeight> tg, tu, td;
    std::vector<HostWeight> g, u, d;
    for (int64_t e = 0; e < E; ++e) {
      tg.push_back(random_mmfp4(I, H, 64, uint64_t(100 + e), hb));
      tu.push_back(random_mmfp4(I, H, 64, uint64_t(200 + e), hb));
      td.push_back(random_mmfp4(H, I, 64, uint64_t(300 + e), hb));
    }
    for (int64_t e = 0; e < E; ++e) {
      g.push_back(tg[size_t(e)].hw);
      u.push_back(tu[size_t(e)].hw);
      d.push_back(td[size_t(e)].hw);
    }
    auto er = B.ref->upload_experts(g, u, d);
    for (auto& fb : B.fast) {
      auto ef = fb->upload_experts(g, u, d);
      for (int64_t T : {1, 3, 17}) {
        const Mat x = random_x(T, H, uint64_t(T));
        std::vector<int32_t> ids(size_t(T * K));
        Mat w(size_t(T * K));
        for (int64_t i = 0; i < T * K; ++i) {
          ids[size_t(i)] = int32_t((i * 5 + i / K) % E);
          w[size_t(i)] = 0.1f + 0.05f * float(i % 4);
        }
        for (int64_t t = 0; t < T; ++t)  // distinct experts per token
          for (int64_t j = 1; j < K; ++j)
            if (ids[size_t(t * K + j)] == ids[size_t(t * K + j - 1)]) ids[size_t(t * K + j)] = (ids[size_t(t * K + j)] + 1) % E;
        Mat a(size_t(T * H), 0.25f), b = a;
        B.ref->moe_experts(Act(const_cast<float*>(x.data()), T, H), ids.data(), w.data(), K, *er, Act(a.data(), T, H));
        fb->moe_experts(Act(const_cast<float*>(x.data()), T, H), ids.data(), w.data(), K, *ef, Act(b.data(), T, H));
        EXPECT_LT(rel_err(b, a), 2e-6) << tag(*fb) << " rotation " << hb << " T " << T;
        Mat one(size_t(H), 0.25f);
        fb->moe_experts(Act(const_cast<float*>(x.data()) + (T - 1) * H, 1, H), ids.data() + (T - 1) * K,
                        w.data() + (T - 1) * K, K, *ef, Act(one.data(), 1, H));
        ASSERT_TRUE(bit_equal(one.data(), b.data() + (T - 1) * H, size_t(H))) << tag(*fb) << " T " << T;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// No allocation on the decode path
// ---------------------------------------------------------------------------------------------------------------

TEST(CpuOps, WarmDecodeStepAllocatesNothing) {
  CpuBackend be(CpuOptions{0, 0, nullptr});
  const int64_t E = 8, H = 128, I = 128, K = 2, heads = 4, R = 64, P = 16, nope = 32, v = 32;
  std::vector<TestWeight> tw;
  std::vector<HostWeight> g, u, d;
  for (int64_t e = 0; e < E; ++e) {
    tw.push_back(random_mmfp4(I, H, 64, uint64_t(e), 64));
    g.push_back(tw.back().hw);
    tw.push_back(random_mmfp4(I, H, 64, uint64_t(e + 50), 64));
    u.push_back(tw.back().hw);
    tw.push_back(random_mmfp4(H, I, 64, uint64_t(e + 90), 64));
    d.push_back(tw.back().hw);
  }
  auto ex = be.upload_experts(g, u, d);
  TestWeight lw = random_mmfp4(256, H, 64, 7, 64), kvb = random_mmfp4(heads * (nope + v), R, 64, 8);
  auto lin = be.upload_linear(lw.hw);
  auto kv_b = be.upload_linear(kvb.hw);
  be.reserve_workspace(WorkspacePlan{4, 64, heads, R + P, K});
  Paged pg({30}, R + P, {{0, 29}}, 3);
  Mat x = random_x(1, H, 1), y(256), o(H), ql(size_t(heads * R)), qp(size_t(heads * P)), ol(size_t(heads * R)),
      qn(size_t(heads * nope)), ov(size_t(heads * v)), z = random_x(1, E, 2);
  std::vector<float> nw(static_cast<size_t>(H), 1.0f);
  DeviceVector norm{nw.data(), H};
  std::vector<int32_t> ids(static_cast<size_t>(K));
  Mat wts(static_cast<size_t>(K));
  RouterParams rp;
  rp.sigmoid = true;
  rp.n_experts = E;
  rp.top_k = K;
  auto step = [&] {
    be.rmsnorm(Act(x.data(), 1, H), norm, 1e-6f, Act(x.data(), 1, H));
    be.linear(Act(x.data(), 1, H), *lin, Act(y.data(), 1, 256), false, false);
    be.mla_absorb_q(Act(qn.data(), heads, nope), *kv_b, heads, nope, v, Act(ql.data(), heads, R));
    be.mla_attention(Act(ql.data(), heads, R), Act(qp.data(), heads, P), pg.view(), heads, 0.1f, pg.meta,
                     Act(ol.data(), heads, R));
    be.mla_expand_v(Act(ol.data(), heads, R), *kv_b, heads, nope, v, Act(ov.data(), heads, v));
    be.moe_route(Act(z.data(), 1, E), nullptr, rp, ids.data(), wts.data());
    be.moe_experts(Act(x.data(), 1, H), ids.data(), wts.data(), K, *ex, Act(o.data(), 1, H));
    be.silu_mul(Act(y.data(), 1, 128), Act(y.data() + 128, 1, 128), Act(y.data(), 1, 128));
  };
  step();
  const int64_t growths = CpuBackend::scratch_growths();
  g_allocs = 0;
  g_count_allocs = true;
  for (int i = 0; i < 3; ++i) step();
  g_count_allocs = false;
  EXPECT_EQ(g_allocs.load(), 0) << "heap allocations during warm decode steps";
  EXPECT_EQ(CpuBackend::scratch_growths(), growths);
}

}  // namespace
}  // namespace mmfp4::testing
