// The cuBLAS prefill path (FastPaths::blas, cuda_backend_blas.cpp) against the CPU reference: linear layers of
// >= 128 rows (MMFP4 dequantized to bf16 in row slices, dense BF16/F16 as stored), the MLA absorb and expand
// products batched over heads, and absorbed-MLA attention as two GEMMs around a causal softmax (fresh prefills and
// prefills after a cached prefix). Each check also confirms cuBLAS ran (its call counter moved) and NaN-poisoned
// outputs are fully written. Tolerance: bf16 operands, float32 accumulation (kBf16, as the tiled GEMM's bf16 mode).
#include "cuda_test_util.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <numeric>

namespace mmfp4::cudatest {
namespace {

constexpr double kBf16 = 1.5e-2, kF16 = 4e-3;

// The path under test is on whatever the environment says (MMFP4_CUDA_FAST=0 turns it off for the other tests).
#define MMFP4_SKIP_WITHOUT_CUBLAS(p)                                                                      \
  do {                                                                                                    \
    (p).gpu->fast().blas = true;                                                                          \
    if (!(p).gpu->cublas_available())                                                                     \
      GTEST_SKIP() << "cuBLAS unavailable (" << (p).gpu->cublas_why() << "): prefill stays on the tile kernels"; \
  } while (0)

TEST(CudaBlas, LinearLayersOfPrefillSize) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  MMFP4_SKIP_WITHOUT_CUBLAS(p);
  struct Case {
    const char* name;
    TestWeight w;
    double tol;
    std::vector<int64_t> ms;
  };
  std::vector<Case> cases;
  cases.push_back({"fp4 g128 [100, 384]", random_fp4(100, 384, 128, 0, 1), kBf16, {128, 129, 300}});
  cases.push_back({"fp4 g32 [257, 96] (K padded to 128)", random_fp4(257, 96, 32, 0, 2), kBf16, {128, 131}});
  cases.push_back({"fp4 g128 rotated h64 [33, 200 -> 256]", random_fp4(33, 200, 128, 64, 3), kBf16, {130}});
  cases.push_back({"fp4 g64 [5000, 8192] (two row slices)", random_fp4(5000, 8192, 64, 0, 4), kBf16, {128}});
  cases.push_back({"bf16 [77, 100] (unaligned rows)", random_dense(77, 100, DType::BF16, 5), kBf16, {129}});
  cases.push_back({"f16 [300, 256]", random_dense(300, 256, DType::F16, 6), kF16, {128, 257}});
  uint64_t seed = 10;
  for (Case& c : cases) {
    for (int layout = 1; layout <= 2; ++layout) {
      if (layout == 1 && c.w.hw.format != WeightFormat::MMFP4) continue;
      p.gpu->fast().dequant = layout == 2;
      auto wc = p.cpu->upload_linear(c.w.hw);
      auto wg = p.gpu->upload_linear(c.w.hw);
      const int64_t K = c.w.hw.k, N = c.w.hw.n;
      for (int64_t M : c.ms)
        for (int acc = 0; acc < 2; ++acc) {
          Rng r(seed++);
          const auto lc = p.linear_case(r, *wc, M, K, N, acc != 0);
          const auto &x = lc.x, &y = lc.y;
          if (!acc) p.poison(y.g);
          const int64_t calls = p.gpu->cublas_calls();
          p.gpu->linear(x.g, *wg, y.g, acc != 0, false);
          EXPECT_GT(p.gpu->cublas_calls(), calls) << c.name << ": not on cuBLAS";
          const double e = p.err(y);
          EXPECT_LT(e, c.tol) << c.name << " layout " << layout << " M=" << M << (acc ? " accumulate" : "");
          std::printf("  cuBLAS linear %-40s layout %d M=%-4lld%s row error %.3g\n", c.name, layout, (long long)M,
                      acc ? " (+=)" : "     ", e);
        }
    }
  }
}

// A prefill-sized rmsnorm held for the cuBLAS linear that reads its output writes that linear's 16-bit input itself
// (FastPaths::norm_blas): the norm's output and the product are bit for bit those of the norm, the conversion pass
// and the product one by one, whatever comes after the norm (the linear on its output, MMFP4 or F16; a rotated
// weight, which cannot take it; an add; a linear of another input). The 16-bit product entry the linear benchmark
// times (linear_16bit) gives the same bits from the same operands.
TEST(CudaBlas, RmsNormWritesTheInputOfTheNextProduct) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  MMFP4_SKIP_WITHOUT_CUBLAS(p);
  Rng r(51);
  const TestWeight plain = random_fp4(200, 384, 128, 0, 52), dense = random_dense(90, 256, DType::F16, 53);
  const TestWeight rotated = random_fp4(70, 200, 64, 64, 54);
  for (int next = 0; next < 5; ++next)  // 0, 1: linear on the norm's output (MMFP4, F16); 2: rotated; 3: add; 4: other
    for (int64_t M : {128, 131, 300}) {
      const TestWeight& tw = next == 1 ? dense : next == 2 ? rotated : plain;
      auto wc = p.cpu->upload_linear(tw.hw);
      auto wg = p.gpu->upload_linear(tw.hw);
      const int64_t K = tw.hw.k, N = tw.hw.n, xs = K + (M == 131 ? 1 : 4);  // an odd stride: no 16-byte loads
      auto x = p.act(r.vec(size_t(M * xs), -3, 3), M, K, xs);
      auto other = p.act(r.vec(size_t(M * K)), M, K);
      auto h = p.act(std::vector<float>(size_t(M * K)), M, K);
      auto y = p.act(std::vector<float>(size_t(M * N)), M, N);
      const std::vector<float> wv = r.vec(size_t(K));
      DeviceVector nc{p.cpu_buf(wv), K}, ng{p.gpu_buf(wv), K};
      p.cpu->rmsnorm(x.c, nc, 1e-5f, h.c);
      if (next <= 2) p.cpu->linear(h.c, *wc, y.c, false, false);
      if (next == 3) p.cpu->add(h.c, other.c);
      if (next == 4) p.cpu->linear(other.c, *wc, y.c, false, false);
      std::vector<float> hs[2], ys[2];
      for (bool on : {false, true}) {
        p.gpu->fast().norm = true;  // the held norm (on whatever the environment says, as blas above)
        p.gpu->fast().norm_blas = on;
        p.poison(h.g);
        p.poison(y.g);
        const int64_t fused = p.gpu->norm_blas_fused_calls(), calls = p.gpu->cublas_calls();
        p.gpu->rmsnorm(x.g, ng, 1e-5f, h.g);
        if (next <= 2) p.gpu->linear(h.g, *wg, y.g, false, false);
        if (next == 3) p.gpu->add(h.g, other.g);
        if (next == 4) p.gpu->linear(other.g, *wg, y.g, false, false);
        hs[on] = p.get_gpu(h.g);
        ys[on] = p.get_gpu(y.g);
        const std::string what = "case " + std::to_string(next) + " M=" + std::to_string(M) + (on ? " on" : " off");
        EXPECT_EQ(p.gpu->norm_blas_fused_calls() - fused, on && next <= 1 ? 1 : 0) << what;
        EXPECT_LT(p.err(h), 2e-5) << "the norm's output, " << what;
        if (next != 3) {
          EXPECT_GT(p.gpu->cublas_calls(), calls) << what << ": not on cuBLAS";
          EXPECT_LT(p.err(y), next == 1 ? kF16 : kBf16) << what;
        }
      }
      EXPECT_EQ(0, std::memcmp(hs[0].data(), hs[1].data(), hs[0].size() * 4)) << "norm, case " << next << " M=" << M;
      if (next != 3) {
        EXPECT_EQ(0, std::memcmp(ys[0].data(), ys[1].data(), ys[0].size() * 4)) << "product, case " << next << " M=" << M;
      }
      if (next <= 1) {  // the same product from a 16-bit copy of the norm's output, as the benchmark times it
        const auto& cw = static_cast<const cuda::CudaLinear&>(*wg);
        const int64_t ld = next == 1 ? (K + 7) / 8 * 8 : int64_t(cw.gw.k_chunks) * 64;
        std::vector<uint16_t> hb(size_t(M * ld), 0);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t k = 0; k < K; ++k)
            hb[size_t(i * ld + k)] = next == 1 ? f32_to_f16(std::clamp(hs[0][size_t(i * K + k)], -65504.0f, 65504.0f))
                                               : f32_to_bf16(hs[0][size_t(i * K + k)]);
        p.poison(y.g);
        ASSERT_TRUE(p.gpu->linear_16bit(p.gpu_buf(hb), ld, M, *wg, y.g, false)) << "case " << next << " M=" << M;
        EXPECT_EQ(0, std::memcmp(p.get_gpu(y.g).data(), ys[0].data(), ys[0].size() * 4))
            << "linear_16bit, case " << next << " M=" << M;
      }
    }
}

// The tokens of `b` at positions >= prefix[s] of each sequence (the cache already holds the earlier ones).
struct SubBatch {
  std::vector<int32_t> tokens, positions, seq, slots;
  BatchMeta cpu_meta, gpu_meta;
};
SubBatch tail_batch(Pair& p, const PagedBatch& b, const std::vector<int64_t>& prefix) {
  SubBatch s;
  for (size_t t = 0; t < b.positions.size(); ++t)
    if (b.positions[t] >= prefix[size_t(b.seq[t])]) {
      s.tokens.push_back(b.tokens[t]);
      s.positions.push_back(b.positions[t]);
      s.seq.push_back(b.seq[t]);
      s.slots.push_back(b.slots[t]);
    }
  s.cpu_meta = b.cpu_meta;
  s.gpu_meta = b.gpu_meta;
  set_batch_arrays(p, s.tokens, s.positions, s.seq, s.slots, s.cpu_meta, s.gpu_meta);
  return s;
}

TEST(CudaBlas, AbsorbedMlaOfPrefillSize) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  MMFP4_SKIP_WITHOUT_CUBLAS(p);
  Rng r(7);
  struct Shape {
    int64_t heads, R, P, nope, v;
    int group;
    DType dense;  // F32 means MMFP4
    std::vector<int64_t> lens, prefix;
  };
  const Shape shapes[] = {
      {4, 128, 32, 64, 64, 128, DType::F32, {150}, {0}},                    // one fresh prefill
      {20, 512, 64, 192, 256, 128, DType::F32, {200, 330}, {0, 100}},      // GLM-4.7-Flash sizes, a cached prefix
      {4, 128, 32, 64, 64, 0, DType::BF16, {140, 129}, {0, 0}},            // BF16 checkpoint, two sequences
  };
  for (const Shape& s : shapes) {
    const int64_t N = s.heads * (s.nope + s.v), H = s.heads;
    TestWeight kvb = s.dense == DType::F32 ? random_fp4(N, s.R, s.group, 0, 50 + uint64_t(s.R))
                                           : random_dense(N, s.R, s.dense, 9);
    auto wc = p.cpu->upload_linear(kvb.hw);
    auto wg = p.gpu->upload_linear(kvb.hw);
    for (DType cache : {DType::F32, DType::BF16}) {
      PagedBatch all = make_paged(p, s.lens, 16, s.R + s.P, r, cache, /*contiguous=*/true);
      const int64_t TA = int64_t(all.tokens.size());
      auto lat = p.act(bf16_exact(r, size_t(TA * s.R)), TA, s.R), kpe = p.act(bf16_exact(r, size_t(TA * s.P)), TA, s.P);
      p.cpu->mla_store(all.kc, lat.c, kpe.c, all.cpu_meta);
      p.gpu->mla_store(all.kg, lat.g, kpe.g, all.gpu_meta);
      SubBatch b = tail_batch(p, all, s.prefix);
      const int64_t T = b.cpu_meta.n_tokens, QK = s.nope + s.P;
      auto q = p.act(r.vec(size_t(T * H * QK)), T, H * QK);
      Act qn_c(q.c.data, T * H, s.nope, QK), qn_g(q.g.data, T * H, s.nope, QK);
      Act qp_c(q.c.data + s.nope, T * H, s.P, QK), qp_g(q.g.data + s.nope, T * H, s.P, QK);
      const std::string what = "heads " + std::to_string(H) + " R " + std::to_string(s.R) + " cache " +
                               std::string(dtype_name(cache)) + " tokens " + std::to_string(T);
      auto qlat = p.act(std::vector<float>(size_t(T * H * s.R)), T * H, s.R);
      p.cpu->mla_absorb_q(qn_c, *wc, H, s.nope, s.v, qlat.c);
      p.poison(qlat.g);
      int64_t calls = p.gpu->cublas_calls();
      p.gpu->mla_absorb_q(qn_g, *wg, H, s.nope, s.v, qlat.g);
      EXPECT_GT(p.gpu->cublas_calls(), calls) << "mla_absorb_q not on cuBLAS, " << what;
      const double e_abs = p.err(qlat);
      EXPECT_LT(e_abs, kBf16) << "mla_absorb_q " << what;
      // Attention and expansion from the CPU's q_lat / o_lat, so each op is measured alone.
      p.gpu->upload(qlat.g.data, Pair::get_cpu(qlat.c).data(), size_t(T * H * s.R) * 4);
      auto olat = p.act(std::vector<float>(size_t(T * H * s.R)), T * H, s.R);
      const float scale = 1.0f / std::sqrt(float(s.nope + s.P));
      p.cpu->mla_attention(qlat.c, qp_c, all.kc, H, scale, b.cpu_meta, olat.c);
      p.poison(olat.g);
      calls = p.gpu->cublas_calls();
      p.gpu->mla_attention(qlat.g, qp_g, all.kg, H, scale, b.gpu_meta, olat.g);
      EXPECT_GT(p.gpu->cublas_calls(), calls) << "mla_attention not on cuBLAS, " << what;
      const double e_att = p.err(olat);
      EXPECT_LT(e_att, kBf16) << "mla_attention " << what;
      p.gpu->upload(olat.g.data, Pair::get_cpu(olat.c).data(), size_t(T * H * s.R) * 4);
      auto o = p.act(std::vector<float>(size_t(T * H * s.v)), T * H, s.v);
      p.cpu->mla_expand_v(olat.c, *wc, H, s.nope, s.v, o.c);
      p.poison(o.g);
      calls = p.gpu->cublas_calls();
      p.gpu->mla_expand_v(olat.g, *wg, H, s.nope, s.v, o.g);
      EXPECT_GT(p.gpu->cublas_calls(), calls) << "mla_expand_v not on cuBLAS, " << what;
      const double e_exp = p.err(o);
      EXPECT_LT(e_exp, kBf16) << "mla_expand_v " << what;
      std::printf("  cuBLAS MLA %-45s absorb %.3g attention %.3g expand %.3g\n", what.c_str(), e_abs, e_att, e_exp);
    }
  }
}

// MoE steps of >= 128 tokens: the tiled expert GEMMs take one bf16 activation (as the rest of prefill); fewer tokens
// keep the split activations. Experts average 64 and ~275 rows (64- and 128-row tiles). Our own kernels only: runs
// in the simulator too.
TEST(CudaBlas, MoeOfPrefillSizeInBf16Tiles) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().blas = p.gpu->fast().gemm = p.gpu->fast().moe = true;  // the bf16 tiles, whatever the environment
  Rng r(9);
  const int64_t E = 8, H = 256, I = 128, K = 2;
  std::vector<TestWeight> g, u, d;
  std::vector<HostWeight> gh, uh, dh;
  for (int64_t e = 0; e < E; ++e) {
    g.push_back(random_fp4(I, H, 128, 0, uint64_t(10 * e + 1)));
    u.push_back(random_fp4(I, H, 128, 0, uint64_t(10 * e + 2)));
    d.push_back(random_fp4(H, I, 128, 0, uint64_t(10 * e + 3)));
  }
  for (size_t e = 0; e < g.size(); ++e) {
    gh.push_back(g[e].hw);
    uh.push_back(u[e].hw);
    dh.push_back(d[e].hw);
  }
  auto ec = p.cpu->upload_experts(gh, uh, dh);
  auto eg = p.gpu->upload_experts(gh, uh, dh);
  for (int64_t T : {100, 257, 1100}) {
    std::vector<int32_t> ids(size_t(T * K));
    for (int64_t t = 0; t < T; ++t) {
      std::vector<int32_t> perm(static_cast<size_t>(E));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), r.g);
      for (int64_t j = 0; j < K; ++j) ids[size_t(t * K + j)] = perm[size_t(j)];
    }
    const std::vector<float> w = r.vec(size_t(T * K), 0.1f, 1.0f);
    auto x = p.act(r.vec(size_t(T * H)), T, H);
    auto out = p.act(r.vec(size_t(T * H)), T, H);
    p.cpu->moe_experts(x.c, ids.data(), w.data(), K, *ec, out.c);
    p.gpu->moe_experts(x.g, p.gpu_buf(ids), p.gpu_buf(w), K, *eg, out.g);
    const double e = p.err(out);
    EXPECT_LT(e, T >= 128 ? kBf16 : 2e-4) << "T=" << T;
    std::printf("  MoE E8 top-2 T=%-5lld row error %.3g (%s)\n", (long long)T, e, T >= 128 ? "bf16 tiles" : "split");
  }
}

// Steps the path must leave to the flash kernel give the same results as before: interleaved sequences (not one
// run each) and short sequences.
TEST(CudaBlas, AttentionFallsBackWhereItDoesNotApply) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  MMFP4_SKIP_WITHOUT_CUBLAS(p);
  Rng r(8);
  const int64_t H = 4, R = 128, P = 32;
  for (bool contiguous : {false, true}) {
    const std::vector<int64_t> lens = contiguous ? std::vector<int64_t>{100, 40} : std::vector<int64_t>{150, 140};
    PagedBatch b = make_paged(p, lens, 16, R + P, r, DType::F32, contiguous);
    const int64_t T = int64_t(b.tokens.size());
    auto lat = p.act(bf16_exact(r, size_t(T * R)), T, R), kpe = p.act(bf16_exact(r, size_t(T * P)), T, P);
    p.cpu->mla_store(b.kc, lat.c, kpe.c, b.cpu_meta);
    p.gpu->mla_store(b.kg, lat.g, kpe.g, b.gpu_meta);
    auto ql = p.act(r.vec(size_t(T * H * R)), T * H, R), qp = p.act(r.vec(size_t(T * H * P)), T * H, P);
    auto o = p.act(std::vector<float>(size_t(T * H * R)), T * H, R);
    p.cpu->mla_attention(ql.c, qp.c, b.kc, H, 0.1f, b.cpu_meta, o.c);
    p.poison(o.g);
    const int64_t calls = p.gpu->cublas_calls();
    p.gpu->mla_attention(ql.g, qp.g, b.kg, H, 0.1f, b.gpu_meta, o.g);
    EXPECT_EQ(p.gpu->cublas_calls(), calls) << (contiguous ? "a 40-token sequence" : "interleaved sequences");
    EXPECT_LT(p.err(o), 2e-5) << (contiguous ? "a 40-token sequence" : "interleaved sequences");
  }
}

}  // namespace
}  // namespace mmfp4::cudatest
