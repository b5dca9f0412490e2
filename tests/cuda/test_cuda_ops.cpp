// Every CUDA op against the CPU reference backend, on the awkward-shape suite (M = 1, 3, 4, 5, 17, 64, 257; K and N
// off the tile multiples; strided views), fresh random data, GPU outputs poisoned with NaN before each run (an
// unwritten element fails: NaN never passes).
//
// Tolerances (max |gpu - cpu| / max |cpu| per row):
//   kTensorCore = 1.5e-2  linear layers on tensor cores with 16-bit activations (MMFP4_CUDA_GEMM=bf16): activations
//                         rounded to bf16 (2^-9 relative), weights exact
//   kF16        = 4e-3    the same for dense F16 weights: activations rounded to f16 (2^-11)
//   kSplit      = 2e-4    the default: activations as hi + lo 16-bit halves (~2^-17), weights exact
//   kExact      = 2e-5    float32 paths (generic linear, norms, attention over a bf16-exact cache, routing weights)
#include "cuda_test_util.h"

#include <algorithm>
#include <array>
#include <functional>
#include <initializer_list>
#include <numeric>

#include "backend/cuda/check.h"

namespace mmfp4::cudatest {
namespace {

constexpr double kTensorCore = 1.5e-2, kF16 = 4e-3, kSplit = 2e-4, kExact = 2e-5;
const int64_t kMs[] = {1, 3, 4, 5, 12, 17, 64, 257};  // 12: two token tiles (the decode GEMV at M 9..16)

struct WeightCase {
  const char* name;
  std::function<TestWeight(uint64_t)> make;
  double tol;
  std::vector<int64_t> ms;  // empty: kMs
};

std::vector<WeightCase> weight_cases() {
  return {
      {"fp4 g128 [100, 384]", [](uint64_t s) { return random_fp4(100, 384, 128, 0, s); }, kTensorCore, {}},
      {"fp4 g32 [257, 96] (K padded to 128)", [](uint64_t s) { return random_fp4(257, 96, 32, 0, s); }, kTensorCore, {}},
      {"fp4 g128 rotated h64 [33, 200 -> 256]", [](uint64_t s) { return random_fp4(33, 200, 128, 64, s); }, kTensorCore,
       {}},
      {"fp4 g64 rotated h128 [16, 256]", [](uint64_t s) { return random_fp4(16, 256, 64, 128, s); }, kTensorCore, {}},
      {"fp4 g40 [50, 120] (generic kernel)", [](uint64_t s) { return random_fp4(50, 120, 40, 0, s); }, kExact, {}},
      {"fp4 g128 [1000, 2048] (split K)", [](uint64_t s) { return random_fp4(1000, 2048, 128, 0, s); }, kTensorCore,
       {1, 3, 17, 64}},
      {"fp4 g128 [4096, 4096]", [](uint64_t s) { return random_fp4(4096, 4096, 128, 0, s); }, kTensorCore, {1, 17}},
      {"bf16 [77, 100] (unaligned rows)", [](uint64_t s) { return random_dense(77, 100, DType::BF16, s); },
       kTensorCore, {}},
      {"f16 [300, 256]", [](uint64_t s) { return random_dense(300, 256, DType::F16, s); }, kF16, {}},
      {"f32 [33, 70] (generic kernel)", [](uint64_t s) { return random_dense(33, 70, DType::F32, s); }, kExact, {}},
  };
}

// A linear case run with a fast path's switch off, then on: each run against the CPU, the two outputs within 1e-5 of
// each other (the same products summed in another order). Returns the launches `count` saw in each run; the switch
// is left on.
template <typename Count>
std::array<int64_t, 2> off_then_on(Pair& p, const Pair::LinearCase& lc, const LinearWeight& wg, bool acc, bool& sw,
                                   Count count, int64_t M, int64_t n, const std::string& what) {
  std::array<int64_t, 2> launches{};
  std::vector<float> out[2];
  for (int on = 0; on < 2; ++on) {
    sw = on != 0;
    const int64_t before = count();
    p.run_linear(lc, wg, acc);
    launches[size_t(on)] = count() - before;
    EXPECT_LT(p.err(lc.y), kSplit) << what << " M=" << M << " switch " << on;
    out[on] = p.get_gpu(lc.y.g);
    for (float v : out[on]) EXPECT_TRUE(std::isfinite(v)) << what << " M=" << M;
  }
  EXPECT_LT(row_rel_err(out[1], out[0], M, n), 1e-5) << what << " M=" << M;
  return launches;
}

TEST(CudaOps, LinearMatchesCpuOnAwkwardShapes) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().blas = false;  // M = 257 on the tile kernels here; test_cuda_blas.cpp checks the cuBLAS path
  uint64_t seed = 1;
  for (bool split : {true, false})
  for (auto wc : weight_cases()) {
    p.gpu->set_split_activations(split);
    p.gpu->fast().dequant = split;  // MMFP4 tile layout 2 with split activations, layout 1 with bf16 ones
    if (split && wc.tol > kExact) wc.tol = kSplit;
    TestWeight tw = wc.make(seed++);
    auto wc_cpu = p.cpu->upload_linear(tw.hw);
    auto wc_gpu = p.gpu->upload_linear(tw.hw);
    const int64_t K = tw.hw.k, N = tw.hw.n;
    double worst = 0;
    for (int64_t M : wc.ms.empty() ? std::vector<int64_t>(std::begin(kMs), std::end(kMs)) : wc.ms) {
      for (int acc = 0; acc < 2; ++acc) {
        Rng r(seed++);
        const auto lc = p.linear_case(r, *wc_cpu, M, K, N, acc != 0);
        for (bool prep : {true, false}) {  // staged activations (M <= 16) and the tiled GEMM (M > 16), or neither
          p.gpu->fast().prep = prep;
          p.gpu->fast().gemm = prep;
          p.run_linear(lc, *wc_gpu, acc != 0);
          const double e = p.err(lc.y);
          worst = std::max(worst, e);
          EXPECT_LT(e, wc.tol) << wc.name << " M=" << M << (acc ? " accumulate" : "") << " prep " << prep;
        }
      }
    }
    std::printf("  linear %-5s %-40s worst row error %.3g (tolerance %.1g)\n", split ? "split" : "bf16", wc.name,
                worst, wc.tol);
  }
}

// The decode GEMV where a block's K split is wide (one split, as for large weights): staged activations above 48 KB
// (M <= 8) and, for two token tiles, the extra splits that make them fit; raw loop and the earlier one.
TEST(CudaOps, LinearWithWideKSplits) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->set_max_splits(1);
  uint64_t seed = 500;
  // K = 4096 at M = 12: the staging forces a split, the largest that fits (3 of 22, 22 and 20 chunks).
  for (int64_t K : {2048, 4096}) {
    TestWeight tw = random_fp4(200, K, 128, 0, uint64_t(77 + K));
    auto w_cpu = p.cpu->upload_linear(tw.hw);
    auto w_gpu = p.gpu->upload_linear(tw.hw);
    for (bool raw : {true, false})
      for (int64_t M : {1, 8, 12, 16}) {
        p.gpu->fast().raw_gemv = raw;
        Rng r(seed++);
        const auto lc = p.linear_case(r, *w_cpu, M, K, 200, false);
        p.poison(lc.y.g);
        p.gpu->linear(lc.x.g, *w_gpu, lc.y.g, false, false);
        EXPECT_LT(p.err(lc.y), kSplit) << "K=" << K << " M=" << M << " raw " << raw;
      }
  }
}

// MLA's per-head W_UV at decode (mla_expand_v; GLM-4.7-Flash sizes: 20 heads, latent 512, nope 192, v 256), for
// runs under several switch settings: the weights on both backends, inputs of T tokens with the CPU's result, and a
// GPU run (output poisoned first) returning its output, after checking it against the CPU and the count of
// launches `counted` reports.
struct ExpandV {
  static constexpr int64_t H = 20, R = 512, nope = 192, v = 256;
  TestWeight w;
  std::unique_ptr<LinearWeight> wc, wg;
  ExpandV(Pair& p, uint64_t seed)
      : w(random_fp4(H * (nope + v), R, 128, 0, seed)), wc(p.cpu->upload_linear(w.hw)), wg(p.gpu->upload_linear(w.hw)) {}
  struct Case {
    int64_t T;
    Pair::Twin olat, o;
  };
  Case make(Pair& p, Rng& r, int64_t T) const {
    Case c{T, p.act(r.vec(size_t(T * H * R)), T * H, R), p.act(std::vector<float>(size_t(T * H * v)), T * H, v)};
    p.cpu->mla_expand_v(c.olat.c, *wc, H, nope, v, c.o.c);
    return c;
  }
  std::vector<float> run(Pair& p, const Case& c, const std::function<int64_t()>& counted, int64_t expected,
                         const std::string& what) const {
    p.poison(c.o.g);
    const int64_t before = counted();
    p.gpu->mla_expand_v(c.olat.g, *wg, H, nope, v, c.o.g);
    EXPECT_EQ(counted() - before, expected) << "mla_expand_v T=" << c.T << " " << what;
    EXPECT_LT(p.err(c.o), kSplit) << "mla_expand_v T=" << c.T << " " << what;
    return p.get_gpu(c.o.g);
  }
  // A case of each token count run with a fast path's switch off (no launch of it counted), then on (one).
  void off_then_on(Pair& p, uint64_t& seed, std::initializer_list<int64_t> tokens, bool& sw,
                   const std::function<int64_t()>& counted, const std::string& what) const {
    for (int64_t T : tokens) {
      Rng r(seed++);
      const Case c = make(p, r, T);
      for (int on = 0; on < 2; ++on) {
        sw = on != 0;
        run(p, c, counted, on, what + " " + std::to_string(on));
      }
    }
  }
};

// The one-wave decode GEMV compiled for 2 blocks per SM (FastPaths::gemv_wide): the same splits and arithmetic as
// the 3-per-SM build, so the same bits; taken for launches of few blocks, not for a weight of many row blocks.
TEST(CudaOps, WideDecodeGemvIsTheSameProduct) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = true;  // the raw loop (also under MMFP4_CUDA_FAST=0)
  f.gemv_kwarps = false;  // K split across warps chooses its own blocks (KSlicedDecodeGemvMatchesTheCpu)
  f.gemv_one = false;     // one-token linears of few tiles take their own kernel (OneTokenGemvMatchesTheCpu)
  uint64_t seed = 900;
  for (int64_t n : {200, 1000, 4096}) {
    TestWeight tw = random_fp4(n, 2048, 128, 0, uint64_t(n));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    for (int64_t M : {1, 3, 8, 12, 16})  // one and two token tiles
      for (int acc = 0; acc < 2; ++acc) {
        Rng r(seed++);
        const auto lc = p.linear_case(r, *wc, M, 2048, n, acc != 0);
        std::vector<float> out[2];
        int64_t wide_launches[2] = {0, 0};
        for (int wide = 0; wide < 2; ++wide) {
          f.gemv_wide = wide != 0;
          const int64_t before = p.gpu->gemv_wide_launches();
          p.run_linear(lc, *wg, acc != 0);
          wide_launches[wide] = p.gpu->gemv_wide_launches() - before;
          EXPECT_LT(p.err(lc.y), kSplit) << "[" << n << ", 2048] M=" << M << " wide " << wide;
          out[wide] = p.get_gpu(lc.y.g);
        }
        EXPECT_EQ(wide_launches[0], 0);
        // Whether the 4096-row weight's launch fits one wave depends on the GPU's SM count: only the small weights'
        // choice is asserted.
        if (n <= 1000) {
          EXPECT_EQ(wide_launches[1], 1) << "[" << n << ", 2048] M=" << M;
        }
        EXPECT_TRUE(out[0] == out[1]) << "[" << n << ", 2048] M=" << M << ": bits differ";
      }
  }
  const ExpandV ev(p, 31);
  for (int64_t T : {1, 3}) {
    Rng r(seed++);
    const auto c = ev.make(p, r, T);
    std::vector<float> out[2];
    for (int wide = 0; wide < 2; ++wide) {
      f.gemv_wide = wide != 0;
      out[wide] = ev.run(p, c, [&] { return p.gpu->gemv_wide_launches(); }, wide, "wide " + std::to_string(wide));
    }
    EXPECT_TRUE(out[0] == out[1]) << "mla_expand_v T=" << T << ": bits differ";
  }
  f.gemv_wide = f.gemv_kwarps = f.gemv_one = true;
}

// 16-bit dense weights over 16 rows (FastPaths::dense_tiles): token tiles launched token tile first
// (GemmArgs::tile_major); at 17..48 rows 16-row tiles instead of a 32- or 64-row one, from 49 rows 64-row tiles (one at
// 64 rows: nothing to reorder). On and off, each against the CPU. F16 and BF16 weights, a partial last row block
// (1,000 rows), K not a multiple of 8 (no 16-byte weight loads) and a wider one, partial last token tiles,
// accumulating. With one K split (the hook) a K of 2,048 does not stage its 16 rows: the token tiles go first; K =
// 200 stages at 17..48 rows (row block first). Without the cap the K splits make the small weights stage.
TEST(CudaOps, DenseTilesMatchTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = true;    // staging (also under MMFP4_CUDA_FAST=0)
  f.blas = false;   // (128 rows would go to cuBLAS)
  uint64_t seed = 1900;
  int64_t launches = 0;
  for (int cap : {1, 0}) {
    p.gpu->set_max_splits(cap);
    for (DType dt : {DType::F16, DType::BF16})
      for (int64_t K : {200, 2048}) {
        TestWeight tw = random_dense(1000, K, dt, uint64_t(K) + (dt == DType::F16 ? 1 : 2));
        auto wc = p.cpu->upload_linear(tw.hw);
        auto wg = p.gpu->upload_linear(tw.hw);
        for (int64_t M : {17, 33, 48, 64, 100})
          for (int acc = 0; acc < 2; ++acc) {
            Rng r(seed++);
            const auto lc = p.linear_case(r, *wc, M, K, 1000, acc != 0);
            for (int on = 0; on < 2; ++on) {
              f.dense_tiles = on != 0;
              const int64_t before = p.gpu->dense_tile_launches();
              p.run_linear(lc, *wg, acc != 0);
              const int64_t taken = p.gpu->dense_tile_launches() - before;
              launches += taken;
              const bool first = on && (M <= 48 ? K > 1024 : M > 64);  // (M = 100: two 64-row tiles, not staged)
              if (cap == 1) { EXPECT_EQ(taken, first ? 1 : 0) << "[1000, " << K << "] M=" << M; }
              EXPECT_LT(p.err(lc.y), dt == DType::F16 ? kF16 : kSplit)
                  << "[1000, " << K << "] " << dtype_name(dt) << " M=" << M << " on " << on << " cap " << cap;
            }
          }
      }
  }
  EXPECT_GE(launches, 2 * (3 * 2 + 2 * 2));
  p.gpu->set_max_splits(0);
  f.blas = f.dense_tiles = true;
}

// One token tile of a 16-bit dense weight on persistent blocks (FastPaths::dense_persist, gemv_dense.cu; the F16
// lm_head at decode): the same bits as the staged dense loop over the whole K (one split) and the CPU's result, for F16 and BF16,
// 1..8 rows, weights with more tiles than the launch has warps (each warp's ring of loads running on across two or
// three tiles, the last tile partial), K a multiple of 64, off it, and not a multiple of 8 (no 16-byte weight loads),
// accumulating or not; also after a pending rmsnorm, which the launch computes. Not taken past 8 rows, nor for
// weights with fewer tiles than its warps (those keep the K split that fills the SMs).
TEST(CudaOps, DenseOneTileOnPersistentBlocks) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = true;  // staging (also under MMFP4_CUDA_FAST=0)
  const int64_t wave_rows = int64_t(p.gpu->sm_count()) * 2 * 8 * 16;  // one tile per warp of the launch
  uint64_t seed = 4100;
  for (DType dt : {DType::F16, DType::BF16})
    for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{
             {1000, 2048}, {wave_rows + 5 * 16 + 7, 192}, {wave_rows + 3, 203}, {40, 640}}) {
      TestWeight tw = random_dense(N, K, dt, seed++);
      auto wc = p.cpu->upload_linear(tw.hw);
      auto wg = p.gpu->upload_linear(tw.hw);
      const std::string name = "[" + std::to_string(N) + ", " + std::to_string(K) + "] " + std::string(dtype_name(dt));
      for (int64_t M : {1, 3, 4, 5, 8, 9})
        for (int acc = 0; acc < 2; ++acc) {
          Rng r(seed++);
          const auto lc = p.linear_case(r, *wc, M, K, N, acc != 0);
          std::vector<float> got[2];
          for (int on = 0; on < 2; ++on) {
            f.dense_persist = on != 0;
            p.gpu->set_max_splits(on ? 0 : 1);  // off: the staged dense loop over the whole K, for the bits
            const int64_t before = p.gpu->dense_persist_launches();
            p.run_linear(lc, *wg, acc != 0);
            EXPECT_EQ(p.gpu->dense_persist_launches() - before, on && M <= 8 && N >= wave_rows ? 1 : 0)
                << name << " M=" << M;
            EXPECT_LT(p.err(lc.y), dt == DType::F16 ? kF16 : kSplit) << name << " M=" << M << " on " << on;
            got[on] = p.get_gpu(lc.y.g);
          }
          if (M <= 8 && N >= wave_rows) { EXPECT_EQ(got[0], got[1]) << name << " M=" << M << " acc " << acc; }
        }
      p.gpu->set_max_splits(0);
      // After a pending rmsnorm: computed while staging, as the staged loop does.
      for (int64_t M : {1, 4}) {
        Rng r(seed++);
        auto x = p.act(r.vec(size_t(M * K), -3, 3), M, K);
        auto h = p.act(std::vector<float>(size_t(M * K)), M, K);
        auto y = p.act(std::vector<float>(size_t(M * N)), M, N);
        const std::vector<float> wv = r.vec(size_t(K));
        DeviceVector nc{p.cpu_buf(wv), K}, ng{p.gpu_buf(wv), K};
        p.poison(y.g);
        p.cpu->rmsnorm(x.c, nc, 1e-5f, h.c);
        p.cpu->linear(h.c, *wc, y.c, false, false);
        f.dense_persist = true;
        const int64_t before = p.gpu->dense_persist_launches();
        p.gpu->rmsnorm(x.g, ng, 1e-5f, h.g);
        p.gpu->linear(h.g, *wg, y.g, false, false);
        EXPECT_EQ(p.gpu->dense_persist_launches() - before, N >= wave_rows ? 1 : 0) << name << " norm M=" << M;
        EXPECT_LT(p.err(y), dt == DType::F16 ? kF16 : kSplit) << name << " after the norm, M=" << M;
      }
    }
  f.dense_persist = true;
}

// The whole-K launch (FastPaths::whole_k and whole_k_pair, gemv_whole_k.cu): 1..16 rows of a plain MMFP4 linear
// whose tiles give each SM 8..15 of them. With the SM count it assumes lowered (set_whole_k_sms), small weights take
// it: 8, 12 and 13 tiles per block (with two warps per tile the build for <= 10 tiles at 8, the one for <= 15 at 12
// and 13), last blocks with fewer tiles (1000 rows: 63 tiles, the last one half used), K of
// 2,048 (whole stages of 256 columns), 640 and 2,304 (a last stage of 2 chunks), groups of 128 and 256 columns (a
// scale per chunk pair or per two), slots reused (8 and 9 stages in 6 slots) or not, 1..4 rows staged in the block
// and paired (loaded by all threads in batches, FastPaths::stage_batch, or row by row), one and two prepared token
// tiles, two consumer warps per tile where a block's codes fit its shared
// memory and one where they do not (K of 4,096 at 13 tiles: there 1..4 rows keep the paired loop), accumulating or
// not; 1..4 rows also after a pending rmsnorm, which the launch computes (the norm's output too). Not taken at 24
// tiles per block, nor at 1..4 rows with whole_k_pair off. On a GPU that runs it natively also a weight of 18,000
// rows at the real SM count (132 SMs: 9 tiles per block, 8 stages in 6 slots). Against the CPU.
TEST(CudaOps, WholeKGemvMatchesTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  if (!p.gpu->whole_k_available()) GTEST_SKIP() << "the whole-K launch needs sm_90 (bulk copies)";
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = f.whole_k = f.whole_k_pair = f.norm = true;  // (also under MMFP4_CUDA_FAST=0)
  // One-token linears of at most an SM's count of tiles (these, on the real SM count) take their own kernel
  // (OneTokenGemvMatchesTheCpu); the full-size weights that reach the whole-K launch have more.
  f.gemv_one = f.token_norm = false;
  struct Case {
    int64_t n, k;
    int group, sms;
    bool taken, staged;  // at 5..16 rows; at 1..4
  };
  std::vector<Case> cases = {{1000, 2048, 128, 8, true, true},
                             {1000, 640, 128, 5, true, true},
                             {3000, 2304, 256, 16, true, true},
                             {1600, 4096, 128, 8, true, false},
                             {3000, 2048, 128, 8, false, false}};
  if (p.gpu->wgmma_ok()) cases.push_back({18000, 2048, 128, 0, true, true});  // (the simulator: too slow)
  uint64_t seed = 2600;
  int64_t launches = 0;
  for (const Case& cs : cases) {
    TestWeight tw = random_fp4(cs.n, cs.k, cs.group, 0, uint64_t(cs.n + cs.k));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    p.gpu->set_whole_k_sms(cs.sms);
    const std::string name = "[" + std::to_string(cs.n) + ", " + std::to_string(cs.k) + "] g" +
                             std::to_string(cs.group) + " sms " + std::to_string(cs.sms);
    for (int64_t M : {1, 2, 3, 4, 5, 8, 9, 16})
      for (int acc = 0; acc < 2; ++acc) {
        Rng r(seed++);
        const auto lc = p.linear_case(r, *wc, M, cs.k, cs.n, acc != 0);
        for (int pair_on = 1; pair_on >= (M <= 4 ? 0 : 1); --pair_on) {
          f.whole_k_pair = pair_on != 0;
          f.stage_batch = acc == 0;  // staged rows in batches of loads by all threads, or the per-row loop
          const int64_t before = p.gpu->whole_k_launches();
          p.run_linear(lc, *wg, acc != 0);
          const int64_t taken = p.gpu->whole_k_launches() - before;
          launches += taken;
          EXPECT_EQ(taken, (M > 4 ? cs.taken : cs.staged && pair_on) ? 1 : 0) << name << " M=" << M << " pair " << pair_on;
          EXPECT_LT(p.err(lc.y), kSplit) << name << " M=" << M << " acc " << acc << " pair " << pair_on;
        }
        f.whole_k_pair = f.stage_batch = true;
      }
    // 1..4 rows after a pending rmsnorm (FastPaths::norm): the norm computed while staging, its output written.
    for (int64_t M : {1, 3, 4}) {
      Rng r(seed++);
      f.stage_batch = M != 3;  // the norm applied in either staging loop
      const int64_t K = cs.k, xs = K + (M == 3 ? 1 : 4);  // (an odd row stride: no 16-byte loads in the sums)
      auto x = p.act(r.vec(size_t(M * xs), -3, 3), M, K, xs);
      auto h = p.act(std::vector<float>(size_t(M * K)), M, K);
      auto y = p.act(std::vector<float>(size_t(M * cs.n)), M, cs.n);
      const std::vector<float> wv = r.vec(size_t(K));
      DeviceVector nc{p.cpu_buf(wv), K}, ng{p.gpu_buf(wv), K};
      p.poison(h.g);
      p.poison(y.g);
      p.cpu->rmsnorm(x.c, nc, 1e-5f, h.c);
      p.cpu->linear(h.c, *wc, y.c, false, false);
      const int64_t before = p.gpu->whole_k_launches();
      p.gpu->rmsnorm(x.g, ng, 1e-5f, h.g);
      p.gpu->linear(h.g, *wg, y.g, false, false);
      EXPECT_EQ(p.gpu->whole_k_launches() - before, cs.staged ? 1 : 0) << name << " norm M=" << M;
      EXPECT_LT(p.err(y), kSplit) << name << " after the norm, M=" << M;
      EXPECT_LT(p.err(h), kExact) << name << " the norm's output, M=" << M;
    }
  }
  f.stage_batch = true;
  EXPECT_GE(launches, 3 * 8 * 2 + 4 * 2);
  p.gpu->set_whole_k_sms(0);
  f.gemv_one = f.token_norm = true;
}

// Paired hi/lo columns (FastPaths::gemv_pair): the raw decode loop of one token tile of at most 4 rows takes each
// step's hi and lo halves in one mma (GemmArgs::pair). Taken at M = 1..4, with one K split and several, one-wave
// (wide) launches and others, an odd count of scale groups (640 columns); not at M = 5. Against the CPU and the
// two-mma loop (the same products summed in another order: not the same bits). Also MLA's per-head W_UV at 1 and
// 3 tokens.
TEST(CudaOps, PairedDecodeGemvMatchesTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = true;  // the raw loop (also under MMFP4_CUDA_FAST=0)
  f.gemv_one = false;  // one-token linears of few tiles take their own kernel (OneTokenGemvMatchesTheCpu)
  f.whole_k_pair = false;  // and weights of 8..15 tiles per SM the whole-K launch (WholeKGemvMatchesTheCpu)
  uint64_t seed = 1200;
  for (int64_t n : {200, 1000, 4096})
    for (int64_t k : {2048, 640}) {
      TestWeight tw = random_fp4(n, k, 128, 0, uint64_t(n + k));
      auto wc = p.cpu->upload_linear(tw.hw);
      auto wg = p.gpu->upload_linear(tw.hw);
      for (int64_t M : {1, 2, 3, 4, 5})
        for (int acc = 0; acc < 2; ++acc) {
          Rng r(seed++);
          const auto lc = p.linear_case(r, *wc, M, k, n, acc != 0);
          const std::string name = "[" + std::to_string(n) + ", " + std::to_string(k) + "]";
          const auto paired = off_then_on(p, lc, *wg, acc != 0, f.gemv_pair, [&] { return p.gpu->gemv_pair_launches(); },
                                          M, n, name);
          EXPECT_EQ(paired[0], 0) << name << " M=" << M;
          EXPECT_EQ(paired[1], M <= 4 ? 1 : 0) << name << " M=" << M;
        }
    }
  ExpandV(p, 41).off_then_on(p, seed, {1, 3}, f.gemv_pair, [&] { return p.gpu->gemv_pair_launches(); }, "pair");
  f.gemv_pair = f.gemv_one = f.whole_k_pair = true;
}

// K split across a block's warps (FastPaths::gemv_kwarps, GemmArgs::kslices): a raw launch of one or two token tiles
// whose whole K fits the staging and whose blocks fit one wave takes 1, 2 or 4 weight tiles per block (8, 4 or 2 K
// slices each; on 132 SMs: [8192, 1024] 2 tiles, [20480, 512] 4, the others 1), their sums added in shared memory.
// Odd counts of scale groups (640 and 384 columns), slices left empty (12 chunks in 8 slices), paired and unpaired
// rows (M = 1, 3, 5, 8), two token tiles (M = 9, 16: 16 staged rows fit the 72 KB staging up to K = 1,088, so
// the shapes of K <= 1,024 take it and [200, 2048] keeps its K split), accumulate, MLA's per-head W_UV (1, 3, 8
// and 12 tokens); against the CPU and the K-split path.
TEST(CudaOps, KSlicedDecodeGemvMatchesTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = true;  // the raw loop (also under MMFP4_CUDA_FAST=0)
  f.gemv_one = false;  // one-token linears of few tiles take their own kernel (OneTokenGemvMatchesTheCpu)
  f.whole_k_pair = false;  // ([20480, 512] on 132 SMs: the whole-K launch, WholeKGemvMatchesTheCpu)
  uint64_t seed = 1300;
  struct Shape {
    int64_t n, k;
  };
  for (const Shape& sh : {Shape{200, 2048}, Shape{200, 640}, Shape{1000, 768}, Shape{77, 384}, Shape{4096, 2048},
                          Shape{2048, 5120}, Shape{8192, 1024}, Shape{20480, 512}}) {
    TestWeight tw = random_fp4(sh.n, sh.k, 128, 0, uint64_t(sh.n + 3 * sh.k));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    const std::string name = "[" + std::to_string(sh.n) + ", " + std::to_string(sh.k) + "]";
    for (int64_t M : {1, 3, 5, 8, 9, 16})
      for (int acc = 0; acc < 2; ++acc) {
        Rng r(seed++);
        const auto lc = p.linear_case(r, *wc, M, sh.k, sh.n, acc != 0);
        const auto sliced = off_then_on(p, lc, *wg, acc != 0, f.gemv_kwarps,
                                        [&] { return p.gpu->gemv_kwarps_launches(); }, M, sh.n, name);
        EXPECT_EQ(sliced[0], 0) << name << " M=" << M;
        if (sh.n <= 1000) {  // few tiles: one wave on any GPU
          EXPECT_EQ(sliced[1], M <= 8 || sh.k <= 1024 ? 1 : 0) << name << " M=" << M;
        }
      }
  }
  ExpandV(p, 43).off_then_on(p, seed, {1, 3, 8, 12}, f.gemv_kwarps, [&] { return p.gpu->gemv_kwarps_launches(); },
                             "kwarps");
  f.gemv_kwarps = f.gemv_one = f.whole_k_pair = true;
}

// GLM's routing for a router test of E experts: sigmoid, top 4 normalised and scaled, a shared expert (id E).
RouterParams sigmoid_router(int64_t E) {
  RouterParams rp;
  rp.sigmoid = true, rp.n_experts = E, rp.top_k = 4, rp.norm_topk_prob = true, rp.routed_scaling_factor = 1.8f;
  rp.shared_id = E;
  return rp;
}

// One token of a plain linear whose 16-row tiles number at most the SMs (o_proj at decode; FastPaths::gemv_one): a
// block of 16 warps per tile over the whole K (gemv_token.cu with one slot and the input as is). Rows off the tile
// (77, 200), odd counts of scale groups (640), groups of 256, K of 6 chunks (warps left empty) and of 128 (8 per warp,
// the most), accumulate or not; against the CPU and the path it replaces (the same products summed in another
// order). Not taken past 128 chunks, nor for two tokens here (rows K + 3 apart: not 16-byte aligned; aligned rows
// of 2..4 tokens: TokenGemvTakesTwoToFourTokens).
TEST(CudaOps, OneTokenGemvMatchesTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = true;
  uint64_t seed = 1400;
  struct Shape {
    int64_t n, k;
    int group;
  };
  for (const Shape& sh : {Shape{200, 2048, 128}, Shape{77, 384, 128}, Shape{1000, 640, 128}, Shape{256, 768, 256},
                          Shape{256, 8192, 128}, Shape{2048, 5120, 128}, Shape{64, 10240, 128}}) {
    TestWeight tw = random_fp4(sh.n, sh.k, sh.group, 0, uint64_t(sh.n + 5 * sh.k));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    const std::string name = "[" + std::to_string(sh.n) + ", " + std::to_string(sh.k) + "] g" + std::to_string(sh.group);
    for (int64_t M : {1, 2})
      for (int acc = 0; acc < 2; ++acc) {
        Rng r(seed++);
        const auto lc = p.linear_case(r, *wc, M, sh.k, sh.n, acc != 0);
        const auto taken = off_then_on(p, lc, *wg, acc != 0, f.gemv_one, [&] { return p.gpu->gemv_one_launches(); },
                                       M, sh.n, name);
        EXPECT_EQ(taken[0], 0) << name << " M=" << M;
        if (M > 1 || sh.k > 8192) { EXPECT_EQ(taken[1], 0) << name << " M=" << M; }
        if (M == 1 && sh.k <= 8192 && sh.n <= 1000) { EXPECT_EQ(taken[1], 1) << name; }  // few tiles on any GPU
      }
  }
  f.gemv_one = true;
}

// The one-token kernel with the pending norm computed while staging (FastPaths::token_norm: q_a + kv_a at decode) and
// as the router with its routing in the same block (FastPaths::token_router), each against the CPU and against the
// path it replaces (the K-sliced or K-split GEMV with the norm in its staging; the router GEMV routing in its last
// block): products within 1e-5 of each other (other orders of addition), the norm's output within kExact of the CPU,
// and the fused routing exactly the routing kernel's on the logits it stored. Shapes: the GLM decode's q_a + kv_a
// (1,344 x 2,048) and router (64 x 2,048), a row count off the tile, groups of 256, a router of one tile, of 8 tiles
// (every warp pair its own tile), of 3 tiles (a block with a warp group past the last tile), and K too long for one
// block (not taken).
TEST(CudaOps, OneTokenGemvTakesTheNormAndTheRouting) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = f.norm = true;
  f.moe = f.moe_router = true;  // the router's routing request, which the one-token router takes
  f.blas = false;
  uint64_t seed = 1500;
  struct Shape {
    int64_t n, k;
    int group;
  };
  for (const Shape& sh : {Shape{1344, 2048, 128}, Shape{300, 1024, 128}, Shape{77, 768, 256}, Shape{64, 10240, 128}}) {
    TestWeight tw = random_fp4(sh.n, sh.k, sh.group, 0, uint64_t(sh.n + 3 * sh.k));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    const std::string name = "norm [" + std::to_string(sh.n) + ", " + std::to_string(sh.k) + "] g" +
                             std::to_string(sh.group);
    Rng r(seed++);
    auto x = p.act(r.vec(size_t(sh.k), -3, 3), 1, sh.k);
    const std::vector<float> wv = r.vec(size_t(sh.k));
    DeviceVector nc{p.cpu_buf(wv), sh.k}, ng{p.gpu_buf(wv), sh.k};
    auto h = p.act(std::vector<float>(size_t(sh.k)), 1, sh.k);
    auto y = p.act(std::vector<float>(size_t(sh.n)), 1, sh.n);
    p.cpu->rmsnorm(x.c, nc, 1e-6f, h.c);
    p.cpu->linear(h.c, *wc, y.c, false, false);
    std::vector<float> out[2];
    for (int on = 0; on < 2; ++on) {
      f.token_norm = on != 0;
      p.poison(h.g);
      p.poison(y.g);
      const int64_t before = p.gpu->token_norm_launches();
      p.gpu->rmsnorm(x.g, ng, 1e-6f, h.g);
      p.gpu->linear(h.g, *wg, y.g, false, false);
      const int64_t taken = p.gpu->token_norm_launches() - before;
      EXPECT_EQ(taken, on && sh.k <= 8192 ? 1 : 0) << name;
      EXPECT_LT(p.err(y), kSplit) << name << " switch " << on;
      EXPECT_LT(p.err(h), kExact) << name << " (the norm's output) switch " << on;
      out[on] = p.get_gpu(y.g);
      for (float v : out[on]) EXPECT_TRUE(std::isfinite(v)) << name;
    }
    EXPECT_LT(row_rel_err(out[1], out[0], 1, sh.n), 1e-5) << name;
  }
  f.token_norm = true;

  for (const Shape& sh : {Shape{64, 2048, 128}, Shape{16, 512, 128}, Shape{128, 1024, 128}, Shape{40, 768, 256},
                          Shape{64, 10240, 128}}) {
    const int64_t E = sh.n, H = sh.k;
    const RouterParams rp = sigmoid_router(E);
    const int64_t S = rp.slots();
    TestWeight tw = random_fp4(E, H, sh.group, 0, uint64_t(E + 7 * H));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    Rng r(seed++);
    const std::vector<float> bias = r.vec(size_t(E), -0.2f, 0.2f);
    DeviceVector bg{p.gpu_buf(bias), E};
    auto x = p.act(r.vec(size_t(H), -3, 3), 1, H);
    const std::vector<float> wv = r.vec(size_t(H));
    DeviceVector nc{p.cpu_buf(wv), H}, ng{p.gpu_buf(wv), H};
    auto h = p.act(std::vector<float>(size_t(H)), 1, H);
    auto lg = p.act(std::vector<float>(size_t(E)), 1, E);
    p.cpu->rmsnorm(x.c, nc, 1e-6f, h.c);
    p.cpu->linear(h.c, *wc, lg.c, false, false);
    int32_t* ids = p.gpu_buf(std::vector<int32_t>(size_t(S)));
    float* wd = p.gpu_buf(std::vector<float>(size_t(S)));
    int32_t* ids_ref = p.gpu_buf(std::vector<int32_t>(size_t(S)));
    float* wd_ref = p.gpu_buf(std::vector<float>(size_t(S)));
    const std::string name = "router [" + std::to_string(E) + ", " + std::to_string(H) + "]";
    std::vector<float> logits[2];
    for (int on = 0; on < 2; ++on) {
      f.token_router = on != 0;
      p.poison(h.g);
      p.poison(lg.g);
      p.gpu->upload(ids, std::vector<int32_t>(size_t(S), -7).data(), size_t(S) * 4);
      const int64_t before = p.gpu->token_router_launches();
      p.gpu->rmsnorm(x.g, ng, 1e-6f, h.g);
      p.gpu->moe_router(h.g, *wg, lg.g, &bg, rp, ids, wd);
      EXPECT_EQ(p.gpu->token_router_launches() - before, on && H <= 8192 ? 1 : 0) << name;
      EXPECT_LT(p.err(lg), kSplit) << name << " switch " << on;
      EXPECT_LT(p.err(h), kExact) << name << " (the norm's output) switch " << on;
      logits[on] = p.get_gpu(lg.g);
      // The routing of the stored logits by the routing kernel: the same ids and weights, bit for bit.
      p.gpu->moe_route(lg.g, &bg, rp, ids_ref, wd_ref);
      std::vector<int32_t> i0(static_cast<size_t>(S)), i1(i0);
      std::vector<float> w0(static_cast<size_t>(S)), w1(w0);
      p.gpu->download(i0.data(), ids_ref, size_t(S) * 4);
      p.gpu->download(w0.data(), wd_ref, size_t(S) * 4);
      p.gpu->download(i1.data(), ids, size_t(S) * 4);
      p.gpu->download(w1.data(), wd, size_t(S) * 4);
      EXPECT_EQ(i0, i1) << name << " switch " << on;
      EXPECT_EQ(w0, w1) << name << " switch " << on;
    }
    EXPECT_LT(row_rel_err(logits[1], logits[0], 1, E), 1e-5) << name;
  }
  f.token_router = true;
}

// 2..4 tokens of a decode batch in the one-token kernel (gemv_token.cu: token t in the mma's column pair t, each row
// staged and normalised apart): plain (FastPaths::gemv_one; o_proj-like K of 5,120, whose four staged rows take 82 KB
// of shared memory), with the pending norm (FastPaths::token_norm) and as the router with its routing
// (FastPaths::token_router; for one token only by default, turned on here). Against the CPU, the routing exactly the
// routing kernel's on the stored logits, and every token's row (products, norm output, logits) bit for bit that row's
// one-token launch alone. Rows off the tile (77, 200, 300, 40), groups of 256, accumulate or not; 5 rows do not take
// it.
TEST(CudaOps, TokenGemvTakesTwoToFourTokens) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = f.norm = true;
  f.gemv_one = f.token_norm = f.token_router = true;
  f.moe = f.moe_router = true;
  f.blas = false;
  p.gpu->set_token_gemv_tokens(4);  // the default (whatever MMFP4_CUDA_TOKEN_GEMV_TOKENS says)
  p.gpu->set_token_gemv_uses(true, true, true);  // the router's use too (off by default: slower, not wrong)
  uint64_t seed = 1600;
  struct Shape {
    int64_t n, k;
    int group;
  };
  auto rows = [](const std::vector<float>& v, int64_t r, int64_t cols) {
    return std::vector<float>(v.begin() + r * cols, v.begin() + (r + 1) * cols);
  };
  for (const Shape& sh : {Shape{200, 2048, 128}, Shape{77, 384, 128}, Shape{1000, 640, 128}, Shape{256, 768, 256},
                          Shape{120, 5120, 128}}) {
    TestWeight tw = random_fp4(sh.n, sh.k, sh.group, 0, uint64_t(sh.n + 11 * sh.k));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    const std::string name = "[" + std::to_string(sh.n) + ", " + std::to_string(sh.k) + "] g" + std::to_string(sh.group);
    for (int64_t M : {2, 3, 4, 5})
      for (int acc = 0; acc < 2; ++acc) {
        Rng r(seed++);
        const std::vector<float> xv = r.vec(size_t(M * sh.k)), y0 = r.vec(size_t(M * sh.n));
        auto x = p.act(xv, M, sh.k);
        auto y = p.act(y0, M, sh.n);
        p.cpu->linear(x.c, *wc, y.c, acc != 0, false);
        const int64_t before = p.gpu->gemv_one_launches();
        p.gpu->linear(x.g, *wg, y.g, acc != 0, false);
        const std::string at = name + " M=" + std::to_string(M) + (acc ? " (+=)" : "");
        EXPECT_EQ(p.gpu->gemv_one_launches() - before, M <= 4 ? 1 : 0) << at;
        EXPECT_LT(p.err(y), kSplit) << at;
        const std::vector<float> got = p.get_gpu(y.g);
        for (float v : got) EXPECT_TRUE(std::isfinite(v)) << at;
        if (M > 4) continue;
        for (int64_t t = 0; t < M; ++t) {
          auto x1 = p.act(rows(xv, t, sh.k), 1, sh.k);
          auto y1 = p.act(rows(y0, t, sh.n), 1, sh.n);
          p.gpu->linear(x1.g, *wg, y1.g, acc != 0, false);
          EXPECT_EQ(p.get_gpu(y1.g), rows(got, t, sh.n)) << at << " token " << t;
        }
      }
  }

  for (const Shape& sh : {Shape{1344, 2048, 128}, Shape{300, 1024, 128}, Shape{77, 768, 256}}) {
    TestWeight tw = random_fp4(sh.n, sh.k, sh.group, 0, uint64_t(sh.n + 13 * sh.k));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    Rng r(seed++);
    const std::vector<float> wv = r.vec(size_t(sh.k));
    DeviceVector nc{p.cpu_buf(wv), sh.k}, ng{p.gpu_buf(wv), sh.k};
    for (int64_t M : {2, 4}) {
      const std::string at = "norm [" + std::to_string(sh.n) + ", " + std::to_string(sh.k) + "] M=" +
                             std::to_string(M);
      const std::vector<float> xv = r.vec(size_t(M * sh.k), -3, 3);
      auto x = p.act(xv, M, sh.k);
      auto h = p.act(std::vector<float>(size_t(M * sh.k)), M, sh.k);
      auto y = p.act(std::vector<float>(size_t(M * sh.n)), M, sh.n);
      p.cpu->rmsnorm(x.c, nc, 1e-6f, h.c);
      p.cpu->linear(h.c, *wc, y.c, false, false);
      p.poison(h.g);
      p.poison(y.g);
      const int64_t before = p.gpu->token_norm_launches();
      p.gpu->rmsnorm(x.g, ng, 1e-6f, h.g);
      p.gpu->linear(h.g, *wg, y.g, false, false);
      EXPECT_EQ(p.gpu->token_norm_launches() - before, 1) << at;
      EXPECT_LT(p.err(y), kSplit) << at;
      EXPECT_LT(p.err(h), kExact) << at << " (the norm's output)";
      const std::vector<float> got = p.get_gpu(y.g), hot = p.get_gpu(h.g);
      for (int64_t t = 0; t < M; ++t) {
        auto x1 = p.act(rows(xv, t, sh.k), 1, sh.k);
        auto h1 = p.act(std::vector<float>(size_t(sh.k)), 1, sh.k);
        auto y1 = p.act(std::vector<float>(size_t(sh.n)), 1, sh.n);
        p.gpu->rmsnorm(x1.g, ng, 1e-6f, h1.g);
        p.gpu->linear(h1.g, *wg, y1.g, false, false);
        EXPECT_EQ(p.get_gpu(y1.g), rows(got, t, sh.n)) << at << " token " << t;
        EXPECT_EQ(p.get_gpu(h1.g), rows(hot, t, sh.k)) << at << " token " << t << " (the norm's output)";
      }
    }
  }

  for (const Shape& sh : {Shape{64, 2048, 128}, Shape{16, 512, 128}, Shape{40, 768, 256}}) {
    const int64_t E = sh.n, H = sh.k;
    const RouterParams rp = sigmoid_router(E);
    const int64_t S = rp.slots();
    TestWeight tw = random_fp4(E, H, sh.group, 0, uint64_t(E + 17 * H));
    auto wc = p.cpu->upload_linear(tw.hw);
    auto wg = p.gpu->upload_linear(tw.hw);
    Rng r(seed++);
    const std::vector<float> bias = r.vec(size_t(E), -0.2f, 0.2f), wv = r.vec(size_t(H));
    DeviceVector bg{p.gpu_buf(bias), E}, nc{p.cpu_buf(wv), H}, ng{p.gpu_buf(wv), H};
    for (int64_t M : {2, 3, 4}) {
      const std::string at = "router [" + std::to_string(E) + ", " + std::to_string(H) + "] M=" + std::to_string(M);
      const std::vector<float> xv = r.vec(size_t(M * H), -3, 3);
      auto x = p.act(xv, M, H);
      auto h = p.act(std::vector<float>(size_t(M * H)), M, H);
      auto lg = p.act(std::vector<float>(size_t(M * E)), M, E);
      p.cpu->rmsnorm(x.c, nc, 1e-6f, h.c);
      p.cpu->linear(h.c, *wc, lg.c, false, false);
      int32_t* ids = p.gpu_buf(std::vector<int32_t>(size_t(M * S), -7));
      float* wd = p.gpu_buf(std::vector<float>(size_t(M * S)));
      int32_t* ids_ref = p.gpu_buf(std::vector<int32_t>(size_t(M * S)));
      float* wd_ref = p.gpu_buf(std::vector<float>(size_t(M * S)));
      const int64_t before = p.gpu->token_router_launches();
      p.gpu->rmsnorm(x.g, ng, 1e-6f, h.g);
      p.gpu->moe_router(h.g, *wg, lg.g, &bg, rp, ids, wd);
      EXPECT_EQ(p.gpu->token_router_launches() - before, 1) << at;
      EXPECT_LT(p.err(lg), kSplit) << at;
      const std::vector<float> logits = p.get_gpu(lg.g);
      p.gpu->moe_route(lg.g, &bg, rp, ids_ref, wd_ref);
      std::vector<int32_t> i0(size_t(M * S)), i1(i0);
      std::vector<float> w0(size_t(M * S)), w1(w0);
      p.gpu->download(i0.data(), ids_ref, i0.size() * 4);
      p.gpu->download(w0.data(), wd_ref, w0.size() * 4);
      p.gpu->download(i1.data(), ids, i1.size() * 4);
      p.gpu->download(w1.data(), wd, w1.size() * 4);
      EXPECT_EQ(i0, i1) << at;
      EXPECT_EQ(w0, w1) << at;
      for (int64_t t = 0; t < M; ++t) {
        auto x1 = p.act(rows(xv, t, H), 1, H);
        auto h1 = p.act(std::vector<float>(size_t(H)), 1, H);
        auto lg1 = p.act(std::vector<float>(size_t(E)), 1, E);
        p.gpu->rmsnorm(x1.g, ng, 1e-6f, h1.g);
        p.gpu->moe_router(h1.g, *wg, lg1.g, &bg, rp, ids_ref, wd_ref);
        EXPECT_EQ(p.get_gpu(lg1.g), rows(logits, t, E)) << at << " token " << t;
      }
    }
  }
}

// 32- and 64-token tiles of the tiled GEMM on wgmma (FastPaths::wgmma, sm_90a devices; gemm_tiled_wg.cu): against
// the CPU and the mma.sync kernel, with split and single bf16 activations, a last row block whose warpgroup runs past
// the weight's last tile (200 rows), an odd count of scale groups (640 columns), groups of 64 and 256 columns, one
// and several K splits, 33..64 rows as two 32-token tiles or one of 64, and token counts that leave a tile partly
// empty. Elsewhere (no such device, the simulator) it is never launched and only the fallback is checked.
TEST(CudaOps, WgmmaTiledGemmMatchesTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.gemm = f.prep = f.dequant = true;
  f.blas = false;  // M >= 128 on the tile kernels here
  if (!p.gpu->wgmma_ok()) std::printf("  (no wgmma on this device or build: only the fallback is checked)\n");
  struct Shape {
    int64_t n, k, group;
  };
  uint64_t seed = 970;
  for (const Shape& sh : {Shape{200, 2048, 128}, Shape{1000, 640, 128}, Shape{4096, 1024, 64}, Shape{300, 1024, 256}})
    for (bool split : {true, false}) {
      p.gpu->set_split_activations(split);
      TestWeight tw = random_fp4(sh.n, sh.k, int(sh.group), 0, uint64_t(sh.n + sh.k));
      auto wc = p.cpu->upload_linear(tw.hw);
      auto wg = p.gpu->upload_linear(tw.hw);
      for (int max_splits : {0, 1}) {
        p.gpu->set_max_splits(max_splits);
        p.gpu->set_wgmma_two_tile_bytes(max_splits ? 0 : int64_t(1) << 40);  // 33..64 rows: one tile, or two
        for (int64_t M : {17, 33, 64, 100})
          for (int acc = 0; acc < 2; ++acc) {
            Rng r(seed++);
            const auto lc = p.linear_case(r, *wc, M, sh.k, sh.n, acc != 0);
            for (int on = 0; on < 2; ++on) {
              f.wgmma = on != 0;
              const int64_t before = p.gpu->wgmma_launches();
              p.run_linear(lc, *wg, acc != 0);
              const std::string at = "[" + std::to_string(sh.n) + ", " + std::to_string(sh.k) + "] g" +
                                     std::to_string(sh.group) + " M=" + std::to_string(M) + (split ? " split" : " bf16") +
                                     " splits<=" + std::to_string(max_splits) + " wgmma " + std::to_string(on);
              const int64_t tiles64 = M <= 64 ? 1 : 0;  // 64-token tiles (more rows take 128-token tiles)
              EXPECT_EQ(p.gpu->wgmma_launches() - before, on && p.gpu->wgmma_ok() ? tiles64 : 0) << at;
              EXPECT_LT(p.err(lc.y), split ? kSplit : kTensorCore) << at;
            }
          }
      }
    }
  p.gpu->set_max_splits(0);
  p.gpu->set_wgmma_two_tile_bytes(cuda::CudaBackend::kWgTwoTileBytes);
  p.gpu->set_split_activations(true);
}

// MMFP4_CUDA_PREFILL_BF16: tiled GEMMs of >= 128 rows with one bf16 activation, within the bf16 tolerance.
TEST(CudaOps, PrefillBf16ActivationsOnLargeM) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().prefill_bf16 = true;
  p.gpu->fast().blas = false;  // the tiled GEMM's bf16 mode, not the cuBLAS path
  TestWeight tw = random_fp4(300, 512, 128, 0, 31);
  auto wc = p.cpu->upload_linear(tw.hw);
  auto wg = p.gpu->upload_linear(tw.hw);
  for (int64_t M : {17, 129, 257}) {
    Rng r{uint64_t(M)};
    auto x = p.act(r.vec(size_t(M * 512)), M, 512);
    auto y = p.act(std::vector<float>(size_t(M * 300)), M, 300);
    p.poison(y.g);
    p.cpu->linear(x.c, *wc, y.c, false, false);
    p.gpu->linear(x.g, *wg, y.g, false, false);
    EXPECT_LT(p.err(y), M >= 128 ? kTensorCore : kSplit) << "M=" << M;
  }
}

// A deferred rmsnorm (MMFP4_CUDA_FAST_NORM) computed inside the next linear, and flushed by any other op: the
// linear's output and the norm's output both match the CPU, whatever follows the norm.
TEST(CudaOps, RmsNormDeferredIntoTheNextLinear) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(41);
  TestWeight plain = random_fp4(200, 256, 32, 0, 42), rotated = random_fp4(70, 200, 64, 64, 43);
  TestWeight dense = random_dense(90, 256, DType::F16, 44);
  // 5: a wider K (several K splits and row blocks write the norm's output) read with an odd row stride (no 16-byte
  // loads in the fused sums of squares).
  TestWeight wide = random_fp4(300, 1024, 128, 0, 45);
  for (bool on : {true, false})
    for (int next = 0; next < 6; ++next)  // 0..2: linear on the norm's output (plain, rotated, F16); 3: add; 4: other x
      for (int64_t M : {1, 3, 8, 16, 17, 40, 100}) {  // > 16: the norm launched, then the tiled GEMM
        p.gpu->fast().norm = on;
        const TestWeight& tw = next == 1 ? rotated : next == 2 ? dense : next == 5 ? wide : plain;
        auto wc = p.cpu->upload_linear(tw.hw);
        auto wg = p.gpu->upload_linear(tw.hw);
        const int64_t K = tw.hw.k, xs = K + (next == 5 ? 1 : 4);
        auto x = p.act(r.vec(size_t(M * xs), -3, 3), M, K, xs);
        auto other = p.act(r.vec(size_t(M * K)), M, K);
        auto h = p.act(std::vector<float>(size_t(M * K)), M, K);
        auto y = p.act(std::vector<float>(size_t(M * tw.hw.n)), M, tw.hw.n);
        const std::vector<float> wv = r.vec(size_t(K));
        DeviceVector nc{p.cpu_buf(wv), K}, ng{p.gpu_buf(wv), K};
        p.poison(h.g);
        p.poison(y.g);
        p.cpu->rmsnorm(x.c, nc, 1e-5f, h.c);
        p.gpu->rmsnorm(x.g, ng, 1e-5f, h.g);
        if (next <= 2 || next == 5) {
          p.cpu->linear(h.c, *wc, y.c, false, false);
          p.gpu->linear(h.g, *wg, y.g, false, false);
          EXPECT_LT(p.err(y), next == 2 ? kF16 : kSplit) << "linear after the norm, case " << next << " M=" << M;
        } else if (next == 3) {
          p.cpu->add(h.c, other.c);
          p.gpu->add(h.g, other.g);
        } else {
          p.cpu->linear(other.c, *wc, y.c, false, false);
          p.gpu->linear(other.g, *wg, y.g, false, false);
          EXPECT_LT(p.err(y), kSplit) << "linear of another input, M=" << M;
        }
        EXPECT_LT(p.err(h), kExact) << "the norm's output, case " << next << " M=" << M << " on " << on;
      }
}

TEST(CudaOps, GenericLinearIsExact) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->set_force_generic(true);
  TestWeight tw = random_fp4(70, 256, 64, 64, 77);
  auto wc = p.cpu->upload_linear(tw.hw);
  auto wg = p.gpu->upload_linear(tw.hw);
  for (int64_t M : kMs) {
    Rng r{uint64_t(M)};
    auto x = p.act(r.vec(size_t(M * 256)), M, 256);
    auto y = p.act(std::vector<float>(size_t(M * 70)), M, 70);
    p.poison(y.g);
    p.cpu->linear(x.c, *wc, y.c, false, false);
    p.gpu->linear(x.g, *wg, y.g, false, false);
    EXPECT_LT(p.err(y), kExact) << "M=" << M;
  }
}

TEST(CudaOps, EmbedMatchesCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  std::vector<TestWeight> tables;
  tables.push_back(random_dense(50, 70, DType::BF16, 1));
  tables.push_back(random_dense(40, 64, DType::F16, 2));
  tables.push_back(random_fp4(30, 128, 32, 0, 3));
  tables.push_back(random_fp4(30, 100, 64, 64, 4));  // rotated: stored 128, un-rotated on lookup
  for (auto& tw : tables) {
    auto tc = p.cpu->upload_linear(tw.hw);
    auto tg = p.gpu->upload_linear(tw.hw);
    Rng r(9);
    std::vector<int32_t> ids(17);
    for (auto& i : ids) i = int32_t(r.below(tw.hw.n));
    ids[3] = ids[5];
    BatchMeta bc, bg;
    bc.n_tokens = bg.n_tokens = int64_t(ids.size());
    bc.tokens = p.cpu_buf(ids);
    bg.tokens = p.gpu_buf(ids);
    auto out = p.act(std::vector<float>(ids.size() * size_t(tw.hw.k + 2)), int64_t(ids.size()), tw.hw.k,
                     tw.hw.k + 2);
    p.poison(out.g);
    p.cpu->embed(*tc, bc, out.c);
    p.gpu->embed(*tg, bg, out.g);
    EXPECT_LT(p.err(out), 1e-6) << tw.hw.name << " [" << tw.hw.n << ", " << tw.hw.k << "]";
  }
}

TEST(CudaOps, RmsNormRopeElementwiseHadamard) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(5);
  for (int64_t rows : {1, 5, 257})
    for (int64_t cols : {64, 100, 2048, 3000, 5000}) {  // 3000, 5000: 12 and 20 columns per thread
      auto x = p.act(r.vec(size_t(rows * (cols + 1)), -3, 3), rows, cols, cols + 1);
      auto o = p.act(std::vector<float>(size_t(rows * cols)), rows, cols);
      const std::vector<float> wv = r.vec(size_t(cols));
      DeviceVector wc{p.cpu_buf(wv), cols}, wg{p.gpu_buf(wv), cols};
      p.poison(o.g);
      p.cpu->rmsnorm(x.c, wc, 1e-5f, o.c);
      p.gpu->rmsnorm(x.g, wg, 1e-5f, o.g);
      EXPECT_LT(p.err(o), kExact) << "rmsnorm " << rows << "x" << cols;
      p.cpu->rmsnorm(x.c, wc, 1e-6f, x.c);  // in place
      p.gpu->rmsnorm(x.g, wg, 1e-6f, x.g);
      EXPECT_LT(p.err(x), kExact) << "rmsnorm in place " << rows << "x" << cols;
    }
  // RoPE: 4 heads of stride 48, rotary dims [16, 48), both pairings, strided rows.
  for (bool inter : {false, true}) {
    const int64_t T = 7, maxpos = 64, dim = 32;
    auto x = p.act(r.vec(size_t(T * 200)), T, 192, 200);
    const std::vector<float> cs = r.vec(size_t(maxpos * dim / 2)), sn = r.vec(size_t(maxpos * dim / 2));
    RopeTable tc{p.cpu_buf(cs), p.cpu_buf(sn), maxpos, int(dim), inter};
    RopeTable tg{p.gpu_buf(cs), p.gpu_buf(sn), maxpos, int(dim), inter};
    std::vector<int32_t> pos(T);
    for (auto& v : pos) v = int32_t(r.below(maxpos));
    BatchMeta bc, bg;
    bc.n_tokens = bg.n_tokens = T;
    bc.h_positions = pos.data();
    bg.positions = p.gpu_buf(pos);
    p.cpu->rope(x.c, 4, 48, 16, tc, bc);
    p.gpu->rope(x.g, 4, 48, 16, tg, bg);
    EXPECT_LT(p.err(x), 1e-6) << "rope interleaved=" << inter;
  }
  // silu_mul, add, add_bias, gather_rows on strided views.
  {
    const int64_t R = 17, C = 300;
    auto g = p.act(r.vec(size_t(R * 310), -6, 6), R, C, 310), u = p.act(r.vec(size_t(R * C)), R, C);
    auto o = p.act(std::vector<float>(size_t(R * C)), R, C);
    p.poison(o.g);
    p.cpu->silu_mul(g.c, u.c, o.c);
    p.gpu->silu_mul(g.g, u.g, o.g);
    EXPECT_LT(p.err(o), kExact) << "silu_mul";
    p.cpu->add(o.c, g.c);
    p.gpu->add(o.g, g.g);
    EXPECT_LT(p.err(o), kExact) << "add";
    const std::vector<float> bv = r.vec(size_t(C));
    p.cpu->add_bias(o.c, DeviceVector{p.cpu_buf(bv), C});
    p.gpu->add_bias(o.g, DeviceVector{p.gpu_buf(bv), C});
    EXPECT_LT(p.err(o), kExact) << "add_bias";
    const std::vector<int32_t> rows = {16, 0, 5, 5, 9};
    auto sel = p.act(std::vector<float>(5 * size_t(C)), 5, C);
    p.poison(sel.g);
    p.cpu->gather_rows(o.c, p.cpu_buf(rows), 5, sel.c);
    p.gpu->gather_rows(o.g, p.gpu_buf(rows), 5, sel.g);
    EXPECT_LT(p.err(sel), 1e-7) << "gather_rows";
  }
  for (int block : {32, 64, 128}) {
    auto x = p.act(r.vec(9 * 260), 9, 256, 260);
    p.cpu->hadamard(x.c, block);
    p.gpu->hadamard(x.g, block);
    EXPECT_LT(p.err(x), 1e-6) << "hadamard block " << block;
  }
}

TEST(CudaOps, PagedGqaAttention) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(11);
  struct Shape {
    int64_t heads, kv_heads, D;
  };
  for (DType dt : {DType::BF16, DType::F32})
  // D = 20: bf16 rows are not 16-byte vectors (the per-element key loop); f32 rows are.
  for (Shape sh : {Shape{6, 2, 32}, Shape{16, 2, 128}, Shape{4, 4, 64}, Shape{12, 1, 64}, Shape{5, 1, 20}}) {
    PagedBatch b = make_paged(p, {1, 37, 70}, 16, 2 * sh.kv_heads * sh.D, r, dt);
    const int64_t T = int64_t(b.tokens.size()), KW = sh.kv_heads * sh.D, QW = sh.heads * sh.D;
    auto k = p.act(bf16_exact(r, size_t(T * KW)), T, KW), v = p.act(bf16_exact(r, size_t(T * KW)), T, KW);
    p.cpu->kv_store(b.kc, k.c, v.c, b.cpu_meta);
    p.gpu->kv_store(b.kg, k.g, v.g, b.gpu_meta);
    auto q = p.act(r.vec(size_t(T * (QW + 4)), -2, 2), T, QW, QW + 4);
    auto o = p.act(std::vector<float>(size_t(T * QW)), T, QW);
    const float scale = 1.0f / std::sqrt(float(sh.D));
    p.cpu->attention(q.c, b.kc, sh.heads, sh.kv_heads, sh.D, scale, b.cpu_meta, o.c);
    for (bool fast : {true, false}) {  // tensor cores (108 tokens: eligible) and the one-pass SIMT kernel
      p.gpu->fast().attn = fast;
      p.gpu->fast().flash = fast;
      p.poison(o.g);
      p.gpu->attention(q.g, b.kg, sh.heads, sh.kv_heads, sh.D, scale, b.gpu_meta, o.g);
      EXPECT_LT(p.err(o), kExact) << "heads " << sh.heads << "/" << sh.kv_heads << " D " << sh.D << " fast " << fast;
    }
  }
}

TEST(CudaOps, AbsorbedMlaAttentionAndKvB) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(12);
  struct Shape {
    int64_t heads, R, P, nope, v;
    int group, had;
    DType dense;  // F32 means MMFP4
  };
  const Shape shapes[] = {
      {4, 128, 32, 64, 64, 128, 0, DType::F32},      // fixture-sized, MMFP4
      {4, 128, 32, 64, 64, 64, 64, DType::F32},      // rotated kv_b (latent cached rotated)
      {4, 128, 32, 64, 64, 0, 0, DType::BF16},       // BF16 checkpoint
      {3, 96, 16, 24, 40, 32, 0, DType::F32},        // heads' rows off the 16-row tiles: generic kernel
      {20, 512, 64, 192, 256, 128, 0, DType::F32},   // GLM-4.7-Flash sizes
  };
  for (const Shape& s : shapes) {
    p.gpu->fast().dequant = !p.gpu->fast().dequant;  // alternate the MMFP4 tile layouts (1, 2, 1, ...)
    const int64_t N = s.heads * (s.nope + s.v);
    TestWeight kvb = s.dense == DType::F32 ? random_fp4(N, s.R, s.group, s.had, 100 + uint64_t(s.R))
                                           : random_dense(N, s.R, s.dense, 5);
    auto wc = p.cpu->upload_linear(kvb.hw);
    auto wg = p.gpu->upload_linear(kvb.hw);
    PagedBatch b = make_paged(p, {5, 1, 70}, 16, s.R + s.P, r);  // 76 tokens: the tensor-core attention
    const int64_t T = int64_t(b.tokens.size()), H = s.heads;
    auto lat = p.act(bf16_exact(r, size_t(T * s.R)), T, s.R), kpe = p.act(bf16_exact(r, size_t(T * s.P)), T, s.P);
    p.cpu->mla_store(b.kc, lat.c, kpe.c, b.cpu_meta);
    p.gpu->mla_store(b.kg, lat.g, kpe.g, b.gpu_meta);
    // q_nope / q_pe as strided per-head views of one q buffer [T, H * (nope + P)], as the model makes them.
    const int64_t QK = s.nope + s.P;
    auto q = p.act(r.vec(size_t(T * H * QK)), T, H * QK);
    Act qn_c(q.c.data, T * H, s.nope, QK), qn_g(q.g.data, T * H, s.nope, QK);
    Act qp_c(q.c.data + s.nope, T * H, s.P, QK), qp_g(q.g.data + s.nope, T * H, s.P, QK);
    auto qlat = p.act(std::vector<float>(size_t(T * H * s.R)), T * H, s.R);
    p.cpu->mla_absorb_q(qn_c, *wc, H, s.nope, s.v, qlat.c);
    for (bool fast : {true, false}) {  // tile-fragment kernel (MMFP4, groups % 32 == 0) and the element kernel
      p.gpu->fast().absorb = fast;
      p.poison(qlat.g);
      p.gpu->mla_absorb_q(qn_g, *wg, H, s.nope, s.v, qlat.g);
      EXPECT_LT(p.err(qlat), kExact) << "mla_absorb_q R=" << s.R << " fast " << fast;
    }
    // Attention from the same q_lat on both sides (the CPU's), so only the attention differs.
    p.gpu->upload(qlat.g.data, Pair::get_cpu(qlat.c).data(), size_t(T * H * s.R) * 4);
    auto olat = p.act(std::vector<float>(size_t(T * H * s.R)), T * H, s.R);
    const float scale = 0.125f;
    p.cpu->mla_attention(qlat.c, qp_c, b.kc, H, scale, b.cpu_meta, olat.c);
    for (bool fast : {true, false}) {
      p.gpu->fast().attn = fast;
      p.gpu->fast().flash = fast;
      p.poison(olat.g);
      p.gpu->mla_attention(qlat.g, qp_g, b.kg, H, scale, b.gpu_meta, olat.g);
      EXPECT_LT(p.err(olat), kExact) << "mla_attention R=" << s.R << " heads " << H << " fast " << fast;
    }
    auto o = p.act(std::vector<float>(size_t(T * H * s.v)), T * H, s.v);
    p.poison(o.g);
    p.cpu->mla_expand_v(olat.c, *wc, H, s.nope, s.v, o.c);
    p.gpu->mla_expand_v(olat.g, *wg, H, s.nope, s.v, o.g);
    const bool generic = s.dense == DType::F32 && ((s.nope % 16) != 0 || ((s.nope + s.v) % 16) != 0);
    EXPECT_LT(p.err(o), generic ? 1e-4 : kSplit) << "mla_expand_v R=" << s.R;
  }
}

// MLA's latent norm, ropes and cache store in one launch (mla_prepare.cu) against the CPU running the ops one by one,
// GLM and fixture sizes, both cache types, a padding token (slot -1: nothing stored), and the switch off.
TEST(CudaOps, MlaPrepareMatchesTheOpsOneByOne) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(23);
  struct Shape {
    int64_t heads, R, P, nope;
  };
  for (Shape sh : {Shape{20, 512, 64, 192}, Shape{4, 128, 32, 64}})
  for (DType dt : {DType::F32, DType::BF16})
  for (bool fast : {true, false}) {
    p.gpu->fast().mla_prep = fast;
    const int64_t W = sh.R + sh.P, QK = sh.nope + sh.P, H = sh.heads, maxpos = 300;
    PagedBatch b = make_paged(p, {3, 1}, 16, W, r, dt);
    const int64_t T = int64_t(b.tokens.size());
    // On the GPU the last token is padding (slot -1, as in a graph bucket: nothing stored); the CPU stores it.
    std::vector<int32_t> slots = b.slots;
    slots.back() = -1;
    b.gpu_meta.slots = p.gpu_buf(slots);
    auto ckv = p.act(r.vec(size_t(T * (W + 7))), T, W, W + 7);
    auto q = p.act(r.vec(size_t(T * H * QK)), T, H * QK);
    auto lat = p.act(std::vector<float>(size_t(T * sh.R)), T, sh.R);
    const std::vector<float> wv = r.vec(size_t(sh.R)), cs = r.vec(size_t(maxpos * sh.P / 2)),
                             sn = r.vec(size_t(maxpos * sh.P / 2));
    DeviceVector wc{p.cpu_buf(wv), sh.R}, wg{p.gpu_buf(wv), sh.R};
    RopeTable tc{p.cpu_buf(cs), p.cpu_buf(sn), maxpos, int(sh.P), true};
    RopeTable tg{p.gpu_buf(cs), p.gpu_buf(sn), maxpos, int(sh.P), true};
    p.poison(lat.g);
    p.cpu->mla_prepare(ckv.c, wc, 1e-6f, lat.c, q.c, H, QK, sh.nope, 0, tc, b.kc, b.cpu_meta);
    p.gpu->mla_prepare(ckv.g, wg, 1e-6f, lat.g, q.g, H, QK, sh.nope, 0, tg, b.kg, b.gpu_meta);
    const std::string what = "R " + std::to_string(sh.R) + " cache " + std::string(dtype_name(dt)) + " fast " +
                             std::to_string(fast);
    EXPECT_LT(p.err(lat), kExact) << "latent, " << what;
    EXPECT_LT(p.err(q), kExact) << "q rope, " << what;
    EXPECT_LT(p.err(ckv), kExact) << "kpe rope, " << what;
    // The cache rows of the stored tokens (bf16 cache: the CPU's float32 values rounded once).
    const int64_t rows = int64_t(b.bt.size() + 3) * 16;
    std::vector<float> cpu_cache(size_t(rows * W));
    std::memcpy(cpu_cache.data(), b.kc.data, cpu_cache.size() * 4);
    std::vector<uint16_t> g16(size_t(rows * W));
    std::vector<float> g32(size_t(rows * W));
    if (dt == DType::F32) p.gpu->download(g32.data(), b.kg.data, g32.size() * 4);
    else p.gpu->download(g16.data(), b.kg.data, g16.size() * 2);
    double worst = 0;
    for (int64_t t = 0; t + 1 < T; ++t)
      for (int64_t c = 0; c < W; ++c) {
        const size_t i = size_t(int64_t(slots[size_t(t)]) * W + c);
        const float ref = dt == DType::F32 ? cpu_cache[i] : round_bf16(cpu_cache[i]);
        const float got = dt == DType::F32 ? g32[i] : bf16_to_f32(g16[i]);
        worst = std::max(worst, double(std::fabs(got - ref)) / (1.0 + std::fabs(ref)));
      }
    EXPECT_LT(worst, dt == DType::F32 ? 1e-5 : 1e-2) << "cache rows, " << what;
  }
}

// Decode: one query token per sequence (the last of each) over long cached contexts, GQA and MLA, both the KV-split
// kernel (few blocks: eligible) and the one-pass kernel, float32 and bf16 caches.
// Decode's mla_prepare held for the next mla_absorb_q and run as extra blocks of its launch (FastPaths::mla_fuse):
// latent, roped q and kpe, cache rows and q_lat are the bits of the two launches, on GLM's shapes and both caches.
TEST(CudaOps, MlaPrepareJoinsTheAbsorbLaunch) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().blas = false;
  Rng r(24);
  const int64_t H = 20, R = 512, P = 64, NOPE = 192, V = 256, W = R + P, QK = NOPE + P, maxpos = 300;
  TestWeight kvb = random_fp4(H * (NOPE + V), R, 128, 0, 31);
  auto wg = p.gpu->upload_linear(kvb.hw);
  for (const std::vector<int64_t>& lens : {std::vector<int64_t>{1}, std::vector<int64_t>{3, 1}})
  for (DType dt : {DType::F32, DType::BF16}) {
    PagedBatch b = make_paged(p, lens, 16, W, r, dt);
    const int64_t T = int64_t(b.tokens.size());
    const std::vector<float> ckv0 = r.vec(size_t(T * W)), q0 = r.vec(size_t(T * H * QK)), wv = r.vec(size_t(R)),
                             cs = r.vec(size_t(maxpos * P / 2)), sn = r.vec(size_t(maxpos * P / 2));
    auto ckv = p.act(ckv0, T, W);
    auto q = p.act(q0, T, H * QK);
    auto lat = p.act(std::vector<float>(size_t(T * R)), T, R);
    auto qlat = p.act(std::vector<float>(size_t(T * H * R)), T * H, R);
    DeviceVector wgv{p.gpu_buf(wv), R};
    RopeTable tg{p.gpu_buf(cs), p.gpu_buf(sn), maxpos, int(P), true};
    const size_t cache_bytes = size_t(int64_t(b.bt.size() + 3) * 16 * W) * (dt == DType::F32 ? 4 : 2);
    const std::vector<uint8_t> cache0(cache_bytes, 0);
    auto run = [&](bool fuse) {
      p.gpu->fast().mla_fuse = fuse;
      p.gpu->upload(ckv.g.data, ckv0.data(), ckv0.size() * 4);
      p.gpu->upload(q.g.data, q0.data(), q0.size() * 4);
      p.gpu->upload(b.kg.data, cache0.data(), cache_bytes);
      p.poison(lat.g);
      p.poison(qlat.g);
      const int64_t before = p.gpu->mla_fused_calls();
      p.gpu->mla_prepare(ckv.g, wgv, 1e-6f, lat.g, q.g, H, QK, NOPE, 0, tg, b.kg, b.gpu_meta);
      Act q_nope(q.g.data, T * H, NOPE, QK);
      p.gpu->mla_absorb_q(q_nope, *wg, H, NOPE, V, qlat.g);
      const bool on = fuse && p.gpu->fast().absorb && p.gpu->fast().mla_prep;  // all off under MMFP4_CUDA_FAST=0
      EXPECT_EQ(p.gpu->mla_fused_calls() - before, on ? 1 : 0);
      std::vector<float> all(size_t(T * (W + H * QK + R + H * R)));
      float* o = all.data();
      p.gpu->download(o, ckv.g.data, size_t(T * W) * 4);
      p.gpu->download(o + T * W, q.g.data, size_t(T * H * QK) * 4);
      p.gpu->download(o + T * (W + H * QK), lat.g.data, size_t(T * R) * 4);
      p.gpu->download(o + T * (W + H * QK + R), qlat.g.data, size_t(T * H * R) * 4);
      std::vector<uint8_t> cache(cache_bytes);
      p.gpu->download(cache.data(), b.kg.data, cache_bytes);
      for (float v : all) EXPECT_TRUE(std::isfinite(v));
      return std::make_pair(all, cache);
    };
    const auto two = run(false), one = run(true);
    EXPECT_EQ(one.first, two.first) << T << " tokens, cache " << dtype_name(dt);
    EXPECT_EQ(one.second, two.second) << T << " tokens, cache " << dtype_name(dt);
  }
  p.gpu->fast().mla_fuse = true;
}

TEST(CudaOps, AttentionAtDecodeOverLongContexts) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(21);
  for (DType dt : {DType::F32, DType::BF16})
    for (bool mla : {false, true}) {
      const int64_t heads = mla ? 20 : 8, kvh = mla ? 1 : 2, D = 64, R = 128, P = 32;
      const int64_t width = mla ? R + P : 2 * kvh * D;
      PagedBatch b = make_paged(p, {1, 70, 300, 33}, 16, width, r, dt);
      const int64_t T = int64_t(b.tokens.size());
      auto kv1 = p.act(bf16_exact(r, size_t(T * width)), T, width);
      if (mla) {
        p.cpu->mla_store(b.kc, kv1.c.col_slice(0, R), kv1.c.col_slice(R, P), b.cpu_meta);
        p.gpu->mla_store(b.kg, kv1.g.col_slice(0, R), kv1.g.col_slice(R, P), b.gpu_meta);
      } else {
        p.cpu->kv_store(b.kc, kv1.c.col_slice(0, kvh * D), kv1.c.col_slice(kvh * D, kvh * D), b.cpu_meta);
        p.gpu->kv_store(b.kg, kv1.g.col_slice(0, kvh * D), kv1.g.col_slice(kvh * D, kvh * D), b.gpu_meta);
      }
      // The last token of each sequence as a decode batch.
      std::vector<int32_t> pos, seq, slots, toks;
      for (int64_t i = 0; i < T; ++i) {
        bool last = true;
        for (int64_t j = i + 1; j < T; ++j) last = last && b.seq[size_t(j)] != b.seq[size_t(i)];
        if (!last) continue;
        pos.push_back(b.positions[size_t(i)]), seq.push_back(b.seq[size_t(i)]), slots.push_back(b.slots[size_t(i)]);
        toks.push_back(0);
      }
      const int64_t Td = int64_t(pos.size());
      BatchMeta mc = b.cpu_meta, mg = b.gpu_meta;
      mc.n_tokens = mg.n_tokens = Td;
      mc.h_positions = pos.data(), mc.h_seq = seq.data(), mc.h_slots = slots.data(), mc.tokens = toks.data();
      mg.positions = p.gpu_buf(pos), mg.seq = p.gpu_buf(seq), mg.slots = p.gpu_buf(slots), mg.tokens = p.gpu_buf(toks);
      const int64_t dq = mla ? R : D, dv = mla ? R : D;
      auto q = p.act(r.vec(size_t(Td * heads * dq), -2, 2), mla ? Td * heads : Td, mla ? R : heads * D);
      auto qpe = p.act(r.vec(size_t(Td * heads * P), -2, 2), Td * heads, P);
      auto o = p.act(std::vector<float>(size_t(Td * heads * dv)), mla ? Td * heads : Td, mla ? R : heads * D);
      if (mla)
        p.cpu->mla_attention(q.c, qpe.c, b.kc, heads, 0.1f, mc, o.c);
      else
        p.cpu->attention(q.c, b.kc, heads, kvh, D, 0.125f, mc, o.c);
      for (bool fast : {true, false}) {
        p.gpu->fast().attn = fast;
        p.poison(o.g);
        if (mla)
          p.gpu->mla_attention(q.g, qpe.g, b.kg, heads, 0.1f, mg, o.g);
        else
          p.gpu->attention(q.g, b.kg, heads, kvh, D, 0.125f, mg, o.g);
        EXPECT_LT(p.err(o), kExact) << (mla ? "MLA" : "GQA") << " cache " << dtype_name(dt) << " fast " << fast;
      }
    }
}

// MLA decode of one token with the value projection in the attention's blocks (FastPaths::attn_expand: the attention
// is held until mla_expand_v, which joins its launch): o_lat and the projected values against the CPU, the values
// within 1e-5 of the separate mla_expand_v launch, on contexts of 1 key (one block per head, no split), 16, 17 (two
// splits), 100 and 700 (several tiles per split). GLM-4.7-Flash's head shapes and a small one; a held attention that a
// download reaches first is launched as issued (and the projection then runs on its own).
TEST(CudaOps, MlaExpandJoinsTheAttentionLaunch) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  auto& f = p.gpu->fast();
  f.prep = f.raw_gemv = f.dequant = f.attn = f.attn_stage = true;
  Rng r(61);
  struct Shape {
    int64_t heads, R, P, nope, v;
    int group;
  };
  for (const Shape& s :
       {Shape{20, 512, 64, 192, 256, 128}, Shape{4, 128, 32, 64, 48, 128}, Shape{3, 256, 32, 32, 64, 256}})
    for (int64_t ctx : {1, 16, 17, 100, 700}) {
      const int64_t H = s.heads, N = H * (s.nope + s.v);
      TestWeight kvb = random_fp4(N, s.R, s.group, 0, uint64_t(7 * N + ctx));
      auto wc = p.cpu->upload_linear(kvb.hw);
      auto wg = p.gpu->upload_linear(kvb.hw);
      PagedBatch b = make_paged(p, {ctx}, 16, s.R + s.P, r);
      const int64_t T = int64_t(b.tokens.size());
      auto kv1 = p.act(bf16_exact(r, size_t(T * (s.R + s.P))), T, s.R + s.P);
      p.cpu->mla_store(b.kc, kv1.c.col_slice(0, s.R), kv1.c.col_slice(s.R, s.P), b.cpu_meta);
      p.gpu->mla_store(b.kg, kv1.g.col_slice(0, s.R), kv1.g.col_slice(s.R, s.P), b.gpu_meta);
      // The last token as a decode step of one token.
      std::vector<int32_t> pos{b.positions.back()}, seq{b.seq.back()}, slots{b.slots.back()}, toks{0};
      BatchMeta mc = b.cpu_meta, mg = b.gpu_meta;
      mc.n_tokens = mg.n_tokens = 1;
      mc.h_positions = pos.data(), mc.h_seq = seq.data(), mc.h_slots = slots.data(), mc.tokens = toks.data();
      mg.positions = p.gpu_buf(pos), mg.seq = p.gpu_buf(seq), mg.slots = p.gpu_buf(slots), mg.tokens = p.gpu_buf(toks);
      auto qlat = p.act(r.vec(size_t(H * s.R), -2, 2), H, s.R);
      auto qpe = p.act(r.vec(size_t(H * s.P), -2, 2), H, s.P);
      auto olat = p.act(std::vector<float>(size_t(H * s.R)), H, s.R);
      auto o = p.act(std::vector<float>(size_t(H * s.v)), H, s.v);
      p.cpu->mla_attention(qlat.c, qpe.c, b.kc, H, 0.07f, mc, olat.c);
      p.cpu->mla_expand_v(olat.c, *wc, H, s.nope, s.v, o.c);
      const std::string at = "heads " + std::to_string(H) + " R " + std::to_string(s.R) + " v " +
                             std::to_string(s.v) + " context " + std::to_string(ctx);
      std::vector<float> out[2];
      for (int on = 0; on < 2; ++on) {
        f.attn_expand = on != 0;
        p.poison(olat.g);
        p.poison(o.g);
        const int64_t before = p.gpu->attn_expand_calls();
        p.gpu->mla_attention(qlat.g, qpe.g, b.kg, H, 0.07f, mg, olat.g);
        p.gpu->mla_expand_v(olat.g, *wg, H, s.nope, s.v, o.g);
        EXPECT_EQ(p.gpu->attn_expand_calls() - before, on) << at;
        EXPECT_LT(p.err(olat), kExact) << at << " switch " << on;
        EXPECT_LT(p.err(o), kSplit) << at << " switch " << on;
        out[on] = p.get_gpu(o.g);
        for (float v : out[on]) EXPECT_TRUE(std::isfinite(v)) << at;
      }
      EXPECT_LT(row_rel_err(out[1], out[0], H, s.v), 1e-5) << at;
      // A read of o_lat between the two ops: the held attention runs first, then the projection on its own.
      p.poison(olat.g);
      p.poison(o.g);
      const int64_t before = p.gpu->attn_expand_calls();
      p.gpu->mla_attention(qlat.g, qpe.g, b.kg, H, 0.07f, mg, olat.g);
      EXPECT_LT(p.err(olat), kExact) << at << " (read before the projection)";
      p.gpu->mla_expand_v(olat.g, *wg, H, s.nope, s.v, o.g);
      EXPECT_EQ(p.gpu->attn_expand_calls() - before, 0) << at;
      EXPECT_LT(p.err(o), kSplit) << at << " (read before the projection)";
    }
  f.attn_expand = true;
}

TEST(CudaOps, MoeRoutingSelectsAsTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(13);
  std::vector<RouterParams> params(5);
  params[0].n_experts = 8, params[0].top_k = 2, params[0].norm_topk_prob = true;   // qwen3_moe
  params[1].n_experts = 128, params[1].top_k = 8, params[1].norm_topk_prob = false;
  params[2].sigmoid = true, params[2].n_experts = 64, params[2].top_k = 4, params[2].norm_topk_prob = true,
  params[2].routed_scaling_factor = 1.8f;                                           // glm4_moe_lite
  params[3].sigmoid = true, params[3].n_experts = 256, params[3].top_k = 8, params[3].n_group = 8,
  params[3].topk_group = 4, params[3].norm_topk_prob = true, params[3].routed_scaling_factor = 2.5f;  // deepseek_v3
  params[4] = params[2], params[4].shared_id = 64;  // glm4_moe_lite with its shared expert as slot top_k (expert 64)
  for (bool fast : {true, false})  // a warp per token (no expert groups) / a thread per token
  for (const auto& rp : params)
    for (int64_t T : {1, 17, 257}) {
      p.gpu->fast().moe = fast;
      const int64_t E = rp.n_experts, K = rp.slots();
      auto lg = p.act(r.vec(size_t(T * E), -4, 4), T, E);
      const std::vector<float> bias = r.vec(size_t(E), -0.5f, 0.5f);
      DeviceVector bc{p.cpu_buf(bias), E}, bg{p.gpu_buf(bias), E};
      std::vector<int32_t> ic(size_t(T * K)), ig(size_t(T * K));
      std::vector<float> wc(size_t(T * K)), wg(size_t(T * K));
      int32_t* idg = p.gpu_buf(ig);
      float* wdg = p.gpu_buf(wg);
      p.cpu->moe_route(lg.c, rp.sigmoid ? &bc : nullptr, rp, ic.data(), wc.data());
      p.gpu->moe_route(lg.g, rp.sigmoid ? &bg : nullptr, rp, idg, wdg);
      p.gpu->download(ig.data(), idg, ig.size() * 4);
      p.gpu->download(wg.data(), wdg, wg.size() * 4);
      EXPECT_EQ(ic, ig) << "E=" << E << " top " << K << " T=" << T << " fast " << fast;
      EXPECT_LT(row_rel_err(wg, wc, T, K), 1e-5) << "E=" << E << " T=" << T << " fast " << fast;
    }
}

// Expert ids of T tokens with K slots each: distinct experts per token, skewed towards low ids.
std::vector<int32_t> distinct_ids(Rng& r, int64_t T, int64_t E, int64_t K) {
  std::vector<int32_t> ids(size_t(T * K));
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int32_t> perm(static_cast<size_t>(E));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.begin() + std::min<int64_t>(E, 2 * K), r.g);
    for (int64_t j = 0; j < K; ++j) ids[size_t(t * K + j)] = perm[size_t(j)];
  }
  return ids;
}

TEST(CudaOps, MoeExpertsGroupedByExpert) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().blas = false;  // split activations at every T here; test_cuda_blas.cpp checks prefill's bf16 tiles
  Rng r(14);
  struct Case {
    const char* name;
    int64_t E, H, I, K;
    int group, had;
    DType dense;  // F32 = MMFP4
    double tol;
  };
  const Case cases[] = {
      {"fp4 E8 [128, 256]", 8, 256, 128, 2, 128, 0, DType::F32, kSplit},
      {"fp4 rotated E16 [128, 256]", 16, 256, 128, 4, 128, 64, DType::F32, kSplit},
      {"bf16 E8 [128, 256]", 8, 256, 128, 2, 0, 0, DType::BF16, kSplit},
      // Intermediate sizes whose silu(gate) * up input (read inside the down GEMM) is not all 16-byte pieces: the
      // up half 8 bytes off alignment (90), and a last piece of 4 columns (92).
      {"bf16 E4 [90, 192] (odd intermediate)", 4, 192, 90, 2, 0, 0, DType::BF16, kSplit},
      {"bf16 E4 [92, 192] (odd intermediate)", 4, 192, 92, 2, 0, 0, DType::BF16, kSplit},
      {"fp4 g40 E4 (generic)", 4, 160, 80, 2, 40, 0, DType::F32, 1e-4},
      {"fp4 E64 [1536, 2048] (GLM)", 64, 2048, 1536, 4, 128, 0, DType::F32, kSplit},
  };
  for (const Case& c : cases) {
    std::vector<TestWeight> g, u, d;
    for (int64_t e = 0; e < c.E; ++e) {
      const uint64_t s = uint64_t(1000 * e + 7);
      if (c.dense == DType::F32) {
        g.push_back(random_fp4(c.I, c.H, c.group, c.had, s));
        u.push_back(random_fp4(c.I, c.H, c.group, c.had, s + 1));
        d.push_back(random_fp4(c.H, c.I, c.group, c.had, s + 2));
      } else {
        g.push_back(random_dense(c.I, c.H, c.dense, s));
        u.push_back(random_dense(c.I, c.H, c.dense, s + 1));
        d.push_back(random_dense(c.H, c.I, c.dense, s + 2));
      }
    }
    std::vector<HostWeight> gh, uh, dh;
    for (int64_t e = 0; e < c.E; ++e) gh.push_back(g[size_t(e)].hw), uh.push_back(u[size_t(e)].hw),
                                      dh.push_back(d[size_t(e)].hw);
    auto ec = p.cpu->upload_experts(gh, uh, dh);
    for (bool fast : {true, false}) {  // gate+up stacked, tight tile bound, tiled GEMM for many rows / earlier path
    p.gpu->fast().moe = fast;
    p.gpu->fast().gemm = fast;
    p.gpu->fast().dequant = fast;
    auto eg = p.gpu->upload_experts(gh, uh, dh);
    double worst = 0;
    for (int64_t T : {1, 5, 17, 64, 100, 257, 1100}) {
      if (c.E == 64 && T > 17) continue;  // the CPU reference is slow at GLM sizes
      if (T == 1100 && c.E != 8) continue;  // > 256 rows per expert: the 128-row tiles
      const std::vector<int32_t> ids = distinct_ids(r, T, c.E, c.K);
      const std::vector<float> w = r.vec(size_t(T * c.K), 0.1f, 1.0f);
      auto x = p.act(r.vec(size_t(T * c.H)), T, c.H);
      auto out = p.act(r.vec(size_t(T * (c.H + 2))), T, c.H, c.H + 2);
      p.cpu->moe_experts(x.c, ids.data(), w.data(), c.K, *ec, out.c);
      p.gpu->moe_experts(x.g, p.gpu_buf(ids), p.gpu_buf(w), c.K, *eg, out.g);
      const double e = p.err(out);
      worst = std::max(worst, e);
      EXPECT_LT(e, c.tol) << c.name << " T=" << T << " fast " << fast;
    }
    std::printf("  moe %-5s %-30s worst row error %.3g\n", fast ? "fast" : "old", c.name, worst);
    }
  }
}

// A plan's MoE token tiles on persistent blocks fed by the copy engine (FastPaths::moe_stream, moe_stream.cu): gate+up
// and down each one launch at 8- and 16-row token tiles (T = 2..40 tokens of 2 slots over 8 experts), on the device's
// block count and on 3 or 7 blocks (ranges that start and end inside a token tile, items across two token tiles and
// items cut short: 48 gate+up and 40 down tiles per expert against 24 or 16 consumer warps; 16 tiles, fewer than a
// block's warps, in the rotated set), stages of 4, 4 and 2 chunks (640 columns) and of 4 and 2 (the down
// projection's 384), an odd count of scale groups, groups of 256, a rotated expert set (its silu input prepared
// apart). Against the CPU and against the staged loop it replaces (within 1e-5: the same products, summed in another
// order where that one splits K).
TEST(CudaOps, MoeStreamMatchesTheCpu) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  if (!p.gpu->whole_k_available()) GTEST_SKIP() << "the streamed MoE launch needs sm_90 (bulk copies)";
  auto& f = p.gpu->fast();
  p.gpu->fast().blas = false;
  f.moe = f.prep = f.raw_gemv = f.dequant = true;  // (also under MMFP4_CUDA_FAST=0)
  f.moe_direct = false;  // the plan's tiles at every T (up to moe_direct_tokens() tokens take direct tiles)
  struct Case {
    int64_t E, H, I, K;
    int group, had;
  };
  const Case cases[] = {{8, 640, 384, 2, 128, 0}, {8, 512, 256, 2, 256, 0}, {8, 256, 128, 2, 128, 64}};
  Rng r(31);
  int64_t launches = 0;
  for (const Case& c : cases) {
    std::vector<TestWeight> keep;
    std::vector<HostWeight> gh, uh, dh;
    for (int64_t e = 0; e < c.E; ++e) {
      keep.push_back(random_fp4(c.I, c.H, c.group, c.had, uint64_t(300 * e + 1)));
      keep.push_back(random_fp4(c.I, c.H, c.group, c.had, uint64_t(300 * e + 2)));
      keep.push_back(random_fp4(c.H, c.I, c.group, c.had, uint64_t(300 * e + 3)));
    }
    for (int64_t e = 0; e < c.E; ++e)
      gh.push_back(keep[size_t(3 * e)].hw), uh.push_back(keep[size_t(3 * e + 1)].hw),
          dh.push_back(keep[size_t(3 * e + 2)].hw);
    auto ec = p.cpu->upload_experts(gh, uh, dh);
    auto eg = p.gpu->upload_experts(gh, uh, dh);
    const std::string name = "E" + std::to_string(c.E) + " [" + std::to_string(c.I) + ", " + std::to_string(c.H) +
                             "] g" + std::to_string(c.group) + (c.had ? " rotated" : "");
    for (int64_t T : {2, 5, 16, 40})
      for (int blocks : {0, 3, 7}) {
        const std::vector<int32_t> ids = distinct_ids(r, T, c.E, c.K);
        const std::vector<float> w = r.vec(size_t(T * c.K), 0.1f, 1.0f);
        auto x = p.act(r.vec(size_t(T * c.H)), T, c.H);
        auto out = p.act(r.vec(size_t(T * c.H)), T, c.H);
        const std::vector<float> start(out.c.data, out.c.data + T * c.H);
        p.cpu->moe_experts(x.c, ids.data(), w.data(), c.K, *ec, out.c);
        const int32_t* idg = p.gpu_buf(ids);
        const float* wg = p.gpu_buf(w);
        std::vector<float> on(size_t(T * c.H)), off(size_t(T * c.H));
        auto run = [&](bool stream, std::vector<float>& got) {
          f.moe_stream = stream;
          p.gpu->set_moe_stream_blocks(blocks);
          p.gpu->upload(out.g.data, start.data(), start.size() * 4);
          p.gpu->moe_experts(x.g, idg, wg, c.K, *eg, out.g);
          p.gpu->download(got.data(), out.g.data, got.size() * 4);
        };
        const int64_t before = p.gpu->moe_stream_launches();
        run(true, on);
        const int64_t taken = p.gpu->moe_stream_launches() - before;
        launches += taken;
        run(false, off);
        EXPECT_EQ(p.gpu->moe_stream_launches() - before, taken);
        const std::string at = name + " T=" + std::to_string(T) + " blocks " + std::to_string(blocks);
        EXPECT_EQ(taken, 2) << at << ": gate+up and down";
        EXPECT_LT(row_rel_err(on, std::vector<float>(out.c.data, out.c.data + T * c.H), T, c.H), kSplit) << at;
        EXPECT_LT(row_rel_err(on, off, T, c.H), 1e-5) << at;
        for (float v : on)
          if (!std::isfinite(v)) {
            ADD_FAILURE() << at << ": not finite";
            break;
          }
      }
  }
  EXPECT_GT(launches, 0);
  p.gpu->set_moe_stream_blocks(0);
  f.moe_stream = true;
}

// The MoE block as the model runs it (router logits -> moe_route -> moe_experts on the device ids), at decode and a
// little beyond: the ids, weights and outputs are the CPU's. GLM's routing with the shared expert as slot top_k
// (expert 8 of 9).
TEST(CudaOps, MoeRouteThenExperts) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().blas = false;
  Rng r(16);
  RouterParams rp;
  rp.sigmoid = true, rp.n_experts = 8, rp.top_k = 2, rp.norm_topk_prob = true, rp.routed_scaling_factor = 1.8f;
  rp.shared_id = 8;
  const int64_t E = 9, H = 256, I = 128, K = rp.slots();
  std::vector<HostWeight> gh, uh, dh;
  std::vector<TestWeight> keep;
  for (int64_t e = 0; e < E; ++e) {
    keep.push_back(random_fp4(I, H, 128, 0, uint64_t(100 * e + 1)));
    keep.push_back(random_fp4(I, H, 128, 0, uint64_t(100 * e + 2)));
    keep.push_back(random_fp4(H, I, 128, 0, uint64_t(100 * e + 3)));
  }
  for (int64_t e = 0; e < E; ++e)
    gh.push_back(keep[size_t(3 * e)].hw), uh.push_back(keep[size_t(3 * e + 1)].hw), dh.push_back(keep[size_t(3 * e + 2)].hw);
  auto ec = p.cpu->upload_experts(gh, uh, dh);
  auto eg = p.gpu->upload_experts(gh, uh, dh);
  const std::vector<float> bias = r.vec(size_t(rp.n_experts), -0.5f, 0.5f);
  DeviceVector bc{p.cpu_buf(bias), rp.n_experts}, bg{p.gpu_buf(bias), rp.n_experts};
  for (int64_t T : {1, 2, 3, 4, 5, 64, 65}) {
    const int64_t direct0 = p.gpu->moe_direct_calls();
    auto lg = p.act(r.vec(size_t(T * rp.n_experts), -4, 4), T, rp.n_experts);
    auto x = p.act(r.vec(size_t(T * H)), T, H);
    auto out = p.act(r.vec(size_t(T * H)), T, H);
    std::vector<int32_t> ic(size_t(T * K)), ig(size_t(T * K));
    std::vector<float> wc(size_t(T * K)), wg(size_t(T * K));
    int32_t* idg = p.gpu_buf(ig);
    float* wdg = p.gpu_buf(wg);
    p.cpu->moe_route(lg.c, &bc, rp, ic.data(), wc.data());
    p.cpu->moe_experts(x.c, ic.data(), wc.data(), K, *ec, out.c);
    p.gpu->moe_route(lg.g, &bg, rp, idg, wdg);
    p.gpu->moe_experts(x.g, idg, wdg, K, *eg, out.g);
    EXPECT_LT(p.err(out), kSplit) << "T=" << T;
    // Up to moe_direct_tokens() tokens (4): each (token, slot) its own tile, no plan (FastPaths::moe_direct, with
    // the fast MoE path it builds on; both off under MMFP4_CUDA_FAST=0); the plan's bits without it.
    // The direct tiles (one row each) take paired hi/lo columns (FastPaths::gemv_pair), the plan's 8-row tiles do
    // not, and either may split K across warps (FastPaths::gemv_kwarps, which depends on the launch's tile count):
    // the same products summed in another order. Without both, the plan's bits.
    if (T <= p.gpu->moe_direct_tokens() && p.gpu->fast().moe_direct && p.gpu->fast().moe) {
      EXPECT_EQ(p.gpu->moe_direct_calls() - direct0, 1) << "T=" << T;
      std::vector<float> direct(size_t(T * H)), fast(size_t(T * H)), planned(size_t(T * H));
      auto run = [&](std::vector<float>& got) {
        p.gpu->upload(out.g.data, out.c.data, got.size() * 4);  // any start, the same for all
        p.gpu->moe_experts(x.g, idg, wdg, K, *eg, out.g);
        p.gpu->download(got.data(), out.g.data, got.size() * 4);
      };
      // (The down projection and combine in one launch, FastPaths::moe_sum, likewise: off for the bits and the
      // GEMV counts, on for the last run.)
      auto& f = p.gpu->fast();
      const bool pair = f.gemv_pair, kwarps = f.gemv_kwarps, sum = f.moe_sum;
      f.gemv_pair = f.gemv_kwarps = f.moe_sum = false;
      run(direct);
      // The plan's tiles on the staged loop (its bits); on the streamed launch (FastPaths::moe_stream, where the
      // device has it) the same products in another order.
      const bool stream = f.moe_stream;
      f.moe_direct = f.moe_stream = false;
      run(planned);
      std::vector<float> streamed(size_t(T * H));
      f.moe_stream = true;
      run(streamed);
      f.moe_stream = stream;
      f.moe_direct = true;
      f.gemv_pair = f.gemv_kwarps = true;
      const int64_t pairs = p.gpu->gemv_pair_launches(), sliced = p.gpu->gemv_kwarps_launches();
      run(fast);
      if (f.raw_gemv && f.prep && f.dequant) {
        EXPECT_EQ(p.gpu->gemv_pair_launches() - pairs, 2) << "gate/up and down";
        EXPECT_EQ(p.gpu->gemv_kwarps_launches() - sliced, 2) << "gate/up and down";
      }
      std::vector<float> summed(size_t(T * H));
      f.moe_sum = true;
      const int64_t sums = p.gpu->moe_sum_calls();
      run(summed);
      // (one token only: more tokens' down projections run as direct tiles and a combine launch)
      if (f.raw_gemv && f.prep && f.dequant) { EXPECT_EQ(p.gpu->moe_sum_calls() - sums, T == 1 ? 1 : 0); }
      f.gemv_pair = pair;
      f.gemv_kwarps = kwarps;
      f.moe_sum = sum;
      EXPECT_EQ(p.gpu->moe_direct_calls() - direct0, 4) << "T=" << T;
      EXPECT_EQ(direct, planned) << "T=" << T;
      EXPECT_LT(row_rel_err(streamed, planned, T, H), 1e-5) << "T=" << T;
      EXPECT_LT(row_rel_err(fast, planned, T, H), 1e-5) << "T=" << T;
      EXPECT_LT(row_rel_err(summed, planned, T, H), 1e-5) << "T=" << T;
      // The shared expert's slot loads its first weights before the routing's wait (FastPaths::shared_early: the
      // routing's shared id, a hint checked on the device): the same bits without it; and where the last slot names
      // another expert than the hint, its blocks load again after the wait: the CPU's result for those ids.
      const bool early = f.shared_early;
      const int64_t hints = p.gpu->shared_early_calls();
      std::vector<float> with(size_t(T * H)), without(size_t(T * H)), wrong(size_t(T * H));
      run(with);
      EXPECT_EQ(p.gpu->shared_early_calls() - hints, early ? 1 : 0);
      f.shared_early = false;
      run(without);
      f.shared_early = early;
      EXPECT_EQ(with, without);
      std::vector<int32_t> routed(ig.size()), iw = ic;
      p.gpu->download(routed.data(), idg, routed.size() * 4);
      iw[size_t(K - 1)] = int32_t(rp.shared_id - 1);
      p.gpu->upload(idg, iw.data(), iw.size() * 4);
      std::vector<float> want(out.c.data, out.c.data + T * H);
      run(wrong);  // from out.c's values, as want
      EXPECT_EQ(p.gpu->shared_early_calls() - hints, early ? 2 : 0);
      p.cpu->moe_experts(x.c, iw.data(), wc.data(), K, *ec, Act(want.data(), T, H));
      EXPECT_LT(row_rel_err(wrong, want, T, H), kSplit) << "last slot: expert " << iw[size_t(K - 1)];
      EXPECT_GT(row_rel_err(wrong, with, T, H), 1e-3) << "the last slot's expert changed the result";
      p.gpu->upload(idg, routed.data(), routed.size() * 4);  // the routing's own ids, checked below
    }
    p.gpu->download(ig.data(), idg, ig.size() * 4);
    p.gpu->download(wg.data(), wdg, wg.size() * 4);
    EXPECT_EQ(ic, ig) << "T=" << T;
    EXPECT_LT(row_rel_err(wg, wc, T, K), 1e-5) << "T=" << T;
  }
}

// One token's MoE down projection and combine in one launch (FastPaths::moe_sum, gemv_token.cu): against the CPU,
// and against the direct tiles + combine launch it replaces (within 1e-5: the same products added in another order).
// GLM's 4 + shared slots (5 x 24 chunks over 16 warps of 8), 9 slots of 6 chunks (warps of 4 cross slots), 20 slots
// of 2 chunks (every warp covers two), groups of 256, one slot; and a slot whose id is out of range, which adds
// nothing (the CPU without that slot). Fresh random inputs for every case.
TEST(CudaOps, MoeDownAndCombineInOneLaunch) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().blas = false;
  Rng r(21);
  struct Case {
    const char* name;
    int64_t E, H, I, K;
    int group_gu, group_down;
  };
  const Case cases[] = {
      {"GLM 5 slots x [2048, 1536]", 9, 2048, 1536, 5, 128, 128},
      {"9 slots x [224, 384]", 12, 224, 384, 9, 32, 128},
      {"20 slots x [64, 128]", 24, 64, 128, 20, 64, 128},
      {"3 slots x [256, 512] g256", 4, 256, 512, 3, 256, 256},
      {"1 slot x [64, 1024]", 2, 64, 1024, 1, 64, 128},
  };
  auto& f = p.gpu->fast();
  const bool sum = f.moe_sum;
  for (const Case& c : cases) {
    std::vector<TestWeight> keep;
    std::vector<HostWeight> gh, uh, dh;
    for (int64_t e = 0; e < c.E; ++e) {
      keep.push_back(random_fp4(c.I, c.H, c.group_gu, 0, r.g()));
      keep.push_back(random_fp4(c.I, c.H, c.group_gu, 0, r.g()));
      keep.push_back(random_fp4(c.H, c.I, c.group_down, 0, r.g()));
    }
    for (int64_t e = 0; e < c.E; ++e)
      gh.push_back(keep[size_t(3 * e)].hw), uh.push_back(keep[size_t(3 * e + 1)].hw),
          dh.push_back(keep[size_t(3 * e + 2)].hw);
    auto ec = p.cpu->upload_experts(gh, uh, dh);
    auto eg = p.gpu->upload_experts(gh, uh, dh);
    std::vector<int32_t> ids(size_t(c.K));
    std::vector<int32_t> perm(size_t(c.E));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), r.g);
    for (int64_t j = 0; j < c.K; ++j) ids[size_t(j)] = perm[size_t(j)];
    const std::vector<float> w = r.vec(size_t(c.K), 0.1f, 1.0f);
    auto x = p.act(r.vec(size_t(c.H)), 1, c.H);
    auto out = p.act(r.vec(size_t(c.H)), 1, c.H);
    const std::vector<float> start(out.c.data, out.c.data + c.H);
    int32_t* idg = p.gpu_buf(ids);
    float* wg = p.gpu_buf(w);
    auto run = [&](bool on) {
      f.moe_sum = on;
      std::vector<float> got(size_t(c.H));
      p.gpu->upload(out.g.data, start.data(), got.size() * 4);
      p.gpu->moe_experts(x.g, idg, wg, c.K, *eg, out.g);
      p.gpu->download(got.data(), out.g.data, got.size() * 4);
      return got;
    };
    const int64_t calls = p.gpu->moe_sum_calls();
    const std::vector<float> fused = run(true), separate = run(false);
    p.cpu->moe_experts(x.c, ids.data(), w.data(), c.K, *ec, out.c);
    const std::vector<float> want(out.c.data, out.c.data + c.H);
    const bool taken = p.gpu->moe_sum_calls() - calls == 1;  // not under MMFP4_CUDA_FAST=0 (no direct step)
    if (f.moe_direct && f.moe && f.raw_gemv && f.prep && f.dequant) { EXPECT_TRUE(taken) << c.name; }
    EXPECT_LT(row_rel_err(fused, want, 1, c.H), kSplit) << c.name;
    EXPECT_LT(row_rel_err(fused, separate, 1, c.H), 1e-5) << c.name;
    for (float v : fused) ASSERT_TRUE(std::isfinite(v)) << c.name;
    // A slot out of range adds nothing in this kernel: the CPU's result without it. (The routing never gives one;
    // the other paths do not check.)
    if (c.K > 1 && taken) {
      std::vector<int32_t> bad = ids, kept_ids;
      std::vector<float> kept_w;
      bad[1] = -1;
      for (int64_t j = 0; j < c.K; ++j)
        if (j != 1) kept_ids.push_back(ids[size_t(j)]), kept_w.push_back(w[size_t(j)]);
      p.gpu->upload(idg, bad.data(), bad.size() * 4);
      const std::vector<float> dropped = run(true);
      std::copy(start.begin(), start.end(), out.c.data);
      p.cpu->moe_experts(x.c, kept_ids.data(), kept_w.data(), c.K - 1, *ec, out.c);
      const std::vector<float> want_dropped(out.c.data, out.c.data + c.H);
      EXPECT_LT(row_rel_err(dropped, want_dropped, 1, c.H), kSplit) << c.name << " (slot 1 out of range)";
    }
  }
  f.moe_sum = sum;
}

// The router (linear) and its routing in one launch (CudaBackend::moe_router, FastPaths::moe_router): sigmoid routing
// of GLM's 64 experts + the shared slot, and of 128 (one row block) at 1..8 tokens, with one K split and with
// several (the epilogue of the single block, and of the last block to finish): the ids, weights and logits of the
// linear and the routing kernel, bit for bit, and that it was taken. 256 experts, 12 tokens and softmax routing take
// the two launches (counted as not fused) and still match.
TEST(CudaOps, MoeRouterFusedIsTheLinearThenTheRouting) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  p.gpu->fast().blas = false;
  Rng r(18);
  struct Case {
    int64_t E, T;
    bool sigmoid, fused;
    int max_splits;
  };
  const Case cases[] = {{64, 1, true, true, 0},  {64, 1, true, true, 1},  {64, 3, true, true, 0},
                        {64, 8, true, true, 1},  {128, 5, true, true, 0}, {256, 1, true, false, 0},
                        {64, 12, true, false, 0}, {64, 2, false, false, 0}};
  const int64_t H = 512;
  // The fused launch has one row block and K splits; the linear alone could split K across warps instead
  // (FastPaths::gemv_kwarps) or, at one token, take a block per tile (FastPaths::gemv_one): the same products summed
  // in another order. The one-token router (FastPaths::token_router) has its own test (OneTokenGemvTakesTheNorm...).
  p.gpu->fast().gemv_kwarps = p.gpu->fast().gemv_one = p.gpu->fast().token_router = false;
  for (const Case& c : cases) {
    RouterParams rp;
    rp.sigmoid = c.sigmoid, rp.n_experts = c.E, rp.top_k = 4, rp.norm_topk_prob = true;
    rp.routed_scaling_factor = 1.8f;
    rp.shared_id = c.sigmoid ? c.E : -1;
    const int64_t K = rp.slots();
    TestWeight tw = random_fp4(c.E, H, 128, 0, uint64_t(c.E + c.T));
    auto wg = p.gpu->upload_linear(tw.hw);
    const std::vector<float> bias = r.vec(size_t(c.E), -0.2f, 0.2f);
    DeviceVector bg{p.gpu_buf(bias), c.E};
    auto x = p.act(r.vec(size_t(c.T * H)), c.T, H);
    std::vector<int32_t> i0(size_t(c.T * K)), i1(i0);
    std::vector<float> w0(size_t(c.T * K)), w1(w0), l0(size_t(c.T * c.E)), l1(l0);
    int32_t* ids = p.gpu_buf(i0);
    float* wd = p.gpu_buf(w0);
    auto lg = p.act(std::vector<float>(size_t(c.T * c.E)), c.T, c.E);
    p.gpu->set_max_splits(c.max_splits);
    p.gpu->linear(x.g, *wg, lg.g, false, false);
    p.gpu->moe_route(lg.g, c.sigmoid ? &bg : nullptr, rp, ids, wd);
    p.gpu->download(i0.data(), ids, i0.size() * 4);
    p.gpu->download(w0.data(), wd, w0.size() * 4);
    p.gpu->download(l0.data(), lg.g.data, l0.size() * 4);
    p.poison(lg.g);
    p.gpu->upload(ids, std::vector<int32_t>(i0.size(), -7).data(), i0.size() * 4);
    const int64_t before = p.gpu->moe_router_fused_calls();
    p.gpu->moe_router(x.g, *wg, lg.g, c.sigmoid ? &bg : nullptr, rp, ids, wd);
    p.gpu->download(i1.data(), ids, i1.size() * 4);
    p.gpu->download(w1.data(), wd, w1.size() * 4);
    p.gpu->download(l1.data(), lg.g.data, l1.size() * 4);
    p.gpu->set_max_splits(0);
    const std::string what = "E " + std::to_string(c.E) + " T " + std::to_string(c.T) + " splits cap " +
                             std::to_string(c.max_splits);
    const bool on = p.gpu->fast().moe_router && p.gpu->fast().moe;  // both off under MMFP4_CUDA_FAST=0
    EXPECT_EQ(p.gpu->moe_router_fused_calls() - before, c.fused && on ? 1 : 0) << what;
    EXPECT_EQ(i0, i1) << what;
    EXPECT_EQ(w0, w1) << what;
    EXPECT_EQ(l0, l1) << what;
    for (float v : w1) EXPECT_TRUE(std::isfinite(v)) << what;
  }
}

TEST(CudaOps, ArgmaxRowsTiesToLowestIndex) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  // The host sampler's scan is the reference: best = 0, then i wins where v[i] > v[best].
  auto host = [](const float* v, int64_t n) {
    int64_t best = 0;
    for (int64_t c = 1; c < n; ++c)
      if (v[c] > v[best]) best = c;
    return int32_t(best);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // GLM's vocabulary (many chunks per row at batch 1, fewer at 6 and 64 rows), odd widths, one column.
  for (const auto& [R, C] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 154880}, {6, 154880}, {64, 154880}, {1, 1}, {3, 5}, {2, 1023}, {1, 1025}, {5, 40001}, {1, 151936}}) {
    Rng r(15 + uint64_t(R * C));
    std::vector<float> v = r.vec(size_t(R * C));
    auto at = [&](int64_t i, int64_t c) -> float& { return v[size_t(i * C + c)]; };
    if (C > 90000 && R > 1) at(1, 700) = at(1, 90000) = 5.0f;           // a tie across chunks: 700 wins
    if (C > 2 && R > 2) at(2, C - 1) = 9.0f;                             // the last column
    if (C > 3 && R > 3) at(3, 0) = nan, at(3, C / 2) = 7.0f;             // v[0] NaN: 0, as the host scan
    if (C > 3 && R > 4) at(4, 1) = nan, at(4, C - 2) = nan;              // NaNs elsewhere never win
    if (R > 5) for (int64_t c = 0; c < C; ++c) at(5, c) = -inf;          // all -inf: 0
    if (C > 1030 && R == 1) at(0, 1024) = 3.0f, at(0, 1027) = 3.0f;      // a tie inside one 16-byte piece
    if (C > 1 && R > 2) at(2, C / 3) = at(2, C - 1);                     // ties with the last column
    auto x = p.act(v, R, C);
    const size_t n = size_t(R);
    std::vector<int32_t> want(n), got(n, -7), cpu(n);
    for (int64_t i = 0; i < R; ++i) want[size_t(i)] = host(v.data() + i * C, C);
    int32_t* d = p.gpu_buf(got);
    p.gpu->argmax_rows(x.g, d);
    p.gpu->download(got.data(), d, got.size() * 4);
    EXPECT_EQ(want, got) << R << " x " << C;
    p.cpu->argmax_rows(x.c, cpu.data());
    EXPECT_EQ(want, cpu) << R << " x " << C;
    if (R > 1 && C > 90000) {
      EXPECT_EQ(got[1], 700);
    }
    // Rows that do not start 16 bytes apart (stride C + 1 from the second column): the scalar loads.
    if (C > 2) {
      std::vector<float> w(size_t(R * (C + 1)));
      for (int64_t i = 0; i < R; ++i)
        for (int64_t c = 0; c < C; ++c) w[size_t(i * (C + 1) + c + 1)] = at(i, c);
      auto y = p.act(w, R, C + 1);
      Act yg(y.g.data + 1, R, C, C + 1);
      std::fill(got.begin(), got.end(), -7);
      p.gpu->argmax_rows(yg, d);
      p.gpu->download(got.data(), d, got.size() * 4);
      EXPECT_EQ(want, got) << R << " x " << C << " unaligned";
    }
  }
}

// A recorded graph replays with whatever its device inputs hold then: per-step values are read from memory.
TEST(CudaOps, GraphReplayReadsCurrentDeviceInputs) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  Rng r(16);
  TestWeight tw = random_fp4(300, 512, 128, 64, 3);
  auto wg = p.gpu->upload_linear(tw.hw);
  auto wc = p.cpu->upload_linear(tw.hw);
  const int64_t M = 3;
  auto x = p.act(r.vec(size_t(M * 512)), M, 512);
  auto y = p.act(std::vector<float>(size_t(M * 300)), M, 300);
  p.gpu->begin_graph();
  p.gpu->linear(x.g, *wg, y.g, false, false);
  auto g = p.gpu->end_graph();
  ASSERT_TRUE(g);
  for (int step = 0; step < 3; ++step) {
    const std::vector<float> nx = r.vec(size_t(M * 512));
    p.gpu->upload(x.g.data, nx.data(), nx.size() * 4);
    std::memcpy(x.c.data, nx.data(), nx.size() * 4);
    p.poison(y.g);
    p.gpu->replay_graph(*g);
    p.cpu->linear(x.c, *wc, y.c, false, false);
    EXPECT_LT(p.err(y), kTensorCore) << "replay " << step;
  }
}

TEST(CudaOps, ErrorsNameTheOpAndShapes) {
  MMFP4_SKIP_WITHOUT_GPU();
  Pair p;
  TestWeight tw = random_fp4(16, 128, 128, 0, 1);
  auto wg = p.gpu->upload_linear(tw.hw);
  auto x = p.act(std::vector<float>(64, 1.0f), 1, 64);
  auto y = p.act(std::vector<float>(16, 0.0f), 1, 16);
  try {
    p.gpu->linear(x.g, *wg, y.g, false, false);
    FAIL() << "a shape mismatch must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[16, 128]"), std::string::npos) << e.what();
  }
  try {
    p.gpu->alloc(size_t(1) << 50, "a petabyte");
    FAIL() << "an impossible allocation must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a petabyte"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("free"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mmfp4::cudatest
