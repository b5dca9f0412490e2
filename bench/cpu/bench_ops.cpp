// The CPU backend's non-GEMM ops on GLM-4.7-Flash shapes (hidden 2048, 20 MLA heads, kv_lora 512, rope 64,
// nope 192, v 256, 64 experts top 4 of 1536), fast vs reference backend, at decode (T = 1, 4) and prefill
// (T = 512) sizes. Registered from bench_gemm.cpp's main (register_op_benchmarks).
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"

namespace mmfp4 {

namespace {

constexpr int64_t kHidden = 2048, kHeads = 20, kR = 512, kP = 64, kNope = 192, kV = 256, kE = 64, kTopK = 4,
                  kInter = 1536;

std::vector<float> rnd(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

struct Mmfp4Host {
  std::vector<uint32_t> codes;
  std::vector<uint16_t> scales;
  HostWeight hw;
  Mmfp4Host(int64_t n, int64_t k, uint64_t seed) {
    std::mt19937_64 rng(seed);
    codes.resize(static_cast<size_t>(n * k / 8));
    scales.resize(static_cast<size_t>(n * k / 128));
    for (auto& c : codes) c = uint32_t(rng());
    for (auto& s : scales) s = f32_to_f16(0.002f + float(rng() % 100) * 1e-5f);
    hw.format = WeightFormat::MMFP4;
    hw.n = n;
    hw.k = k;
    hw.k_stored = k;
    hw.group_size = 128;
    hw.codes = codes.data();
    hw.scales = scales.data();
  }
};

std::unique_ptr<CpuBackend> backend(const std::string& kind) {
  if (kind == "ref") return std::make_unique<CpuBackend>(CpuOptions{0, 1, nullptr});
  return std::make_unique<CpuBackend>(CpuOptions{0, 0, kind.c_str()});
}

// A paged MLA cache of one sequence of `ctx` tokens (block 16), and the batch metadata of T queries at its end.
struct MlaCache {
  std::vector<float> data;
  std::vector<int32_t> table, pos, seq, slot;
  BatchMeta meta;
  MlaCache(int64_t ctx, int64_t T) {
    const int64_t blocks = (ctx + 15) / 16;
    data = rnd(blocks * 16 * (kR + kP), 5, 0.5f);
    for (int64_t b = 0; b < blocks; ++b) table.push_back(int32_t(blocks - 1 - b));
    for (int64_t t = 0; t < T; ++t) {
      pos.push_back(int32_t(ctx - T + t));
      seq.push_back(0);
      slot.push_back(0);
    }
    meta.n_tokens = T;
    meta.n_seqs = 1;
    meta.max_blocks = blocks;
    meta.h_positions = pos.data();
    meta.h_seq = seq.data();
    meta.h_slots = slot.data();
    meta.h_block_tables = table.data();
  }
  KVLayerView view() { return KVLayerView{data.data(), DType::F32, 16, kR + kP}; }
};

void bm_rmsnorm(benchmark::State& st, std::string kind, int64_t T) {
  auto be = backend(kind);
  auto x = rnd(T * kHidden, 1), w = rnd(kHidden, 2);
  DeviceVector wv{w.data(), kHidden};
  for (auto _ : st) be->rmsnorm(Act(x.data(), T, kHidden), wv, 1e-5f, Act(x.data(), T, kHidden));
}

void bm_silu(benchmark::State& st, std::string kind, int64_t T) {
  auto be = backend(kind);
  auto g = rnd(T * kInter, 1), u = rnd(T * kInter, 2), o = g;
  for (auto _ : st) be->silu_mul(Act(g.data(), T, kInter), Act(u.data(), T, kInter), Act(o.data(), T, kInter));
}

void bm_rope(benchmark::State& st, std::string kind, int64_t T) {
  auto be = backend(kind);
  const int64_t QK = kNope + kP, maxpos = 4096;
  std::vector<float> c(static_cast<size_t>(maxpos * kP / 2), 0.6f), s(c.size(), 0.8f);
  RopeTable rt{c.data(), s.data(), maxpos, int(kP), true};
  auto q = rnd(T * kHeads * QK, 1);
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t);
  BatchMeta b;
  b.n_tokens = T;
  b.h_positions = pos.data();
  for (auto _ : st) be->rope(Act(q.data(), T, kHeads * QK), kHeads, QK, kNope, rt, b);
}

void bm_mla_attention(benchmark::State& st, std::string kind, int64_t T, int64_t ctx) {
  auto be = backend(kind);
  MlaCache cache(ctx, T);
  be->reserve_workspace(WorkspacePlan{T, ctx, kHeads, kR + kP, kTopK});
  auto ql = rnd(T * kHeads * kR, 1), qp = rnd(T * kHeads * kP, 2), o = ql;
  for (auto _ : st)
    be->mla_attention(Act(ql.data(), T * kHeads, kR), Act(qp.data(), T * kHeads, kP), cache.view(), kHeads, 0.07f,
                      cache.meta, Act(o.data(), T * kHeads, kR));
  st.counters["positions/s"] = benchmark::Counter(double(T * ctx * kHeads), benchmark::Counter::kIsIterationInvariantRate);
}

// absorb (q_nope [T*H, nope] -> q_lat [T*H, R]) or expand (o_lat [T*H, R] -> [T*H, v]) on GLM's kv_b_proj.
void bm_mla_kv_b(benchmark::State& st, std::string kind, int64_t T, bool absorb) {
  auto be = backend(kind);
  Mmfp4Host w(kHeads * (kNope + kV), kR, 3);
  auto kv_b = be->upload_linear(w.hw);
  const int64_t in = absorb ? kNope : kR, out = absorb ? kR : kV;
  auto x = rnd(T * kHeads * in, 1);
  std::vector<float> y(static_cast<size_t>(T * kHeads * out));
  const Act xa(x.data(), T * kHeads, in), ya(y.data(), T * kHeads, out);
  for (auto _ : st) {
    if (absorb) be->mla_absorb_q(xa, *kv_b, kHeads, kNope, kV, ya);
    else be->mla_expand_v(xa, *kv_b, kHeads, kNope, kV, ya);
  }
  const double weights = double(kHeads * (absorb ? kNope : kV) * kR);
  st.counters["GB/s"] = benchmark::Counter(weights * 0.515625, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_moe_route(benchmark::State& st, std::string kind, int64_t T) {
  auto be = backend(kind);
  auto z = rnd(T * kE, 1), bias = rnd(kE, 2, 0.01f);
  DeviceVector bv{bias.data(), kE};
  RouterParams p;
  p.sigmoid = true;
  p.n_experts = kE;
  p.top_k = kTopK;
  p.norm_topk_prob = true;
  p.routed_scaling_factor = 1.8f;
  std::vector<int32_t> ids(static_cast<size_t>(T * kTopK));
  std::vector<float> w(ids.size());
  for (auto _ : st) be->moe_route(Act(z.data(), T, kE), &bv, p, ids.data(), w.data());
}

// Routed experts of one MoE layer at decode: weights of the 4 experts each token picks come from DRAM (all 64
// experts are 0.6 GB, far past the L3).
void bm_moe_experts(benchmark::State& st, std::string kind, int64_t T) {
  auto be = backend(kind);
  std::vector<std::unique_ptr<Mmfp4Host>> host;
  std::vector<HostWeight> g, u, d;
  for (int64_t e = 0; e < kE; ++e) {
    host.push_back(std::make_unique<Mmfp4Host>(kInter, kHidden, uint64_t(e)));
    g.push_back(host.back()->hw);
    u.push_back(host.back()->hw);
    host.push_back(std::make_unique<Mmfp4Host>(kHidden, kInter, uint64_t(e + 100)));
    d.push_back(host.back()->hw);
  }
  auto ew = be->upload_experts(g, u, d);
  host.clear();
  be->reserve_workspace(WorkspacePlan{T, 64, kHeads, kR + kP, kTopK});
  auto x = rnd(T * kHidden, 1);
  std::vector<float> out(static_cast<size_t>(T * kHidden));
  std::vector<int32_t> ids(static_cast<size_t>(T * kTopK));
  std::vector<float> w(ids.size(), 0.25f);
  int64_t step = 0;
  double bytes = 0;
  for (auto _ : st) {
    // A different set of experts every step (distinct within a token), as routing would pick.
    std::vector<bool> used(static_cast<size_t>(kE), false);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < kTopK; ++j) ids[size_t(t * kTopK + j)] = int32_t((step * 13 + t * 5 + j * 17) % kE);
    for (int32_t id : ids) used[size_t(id)] = true;
    for (bool b : used) bytes += b ? 3.0 * double(kInter * kHidden) * 0.515625 : 0.0;
    ++step;
    be->moe_experts(Act(x.data(), T, kHidden), ids.data(), w.data(), kTopK, *ew, Act(out.data(), T, kHidden));
  }
  st.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsRate);
}

}  // namespace

void register_op_benchmarks(const std::vector<std::string>& kinds) {
  for (const std::string& k : kinds) {
    for (int64_t T : {1, 512}) {
      benchmark::RegisterBenchmark(("op/rmsnorm/" + k + "/T:" + std::to_string(T)).c_str(), bm_rmsnorm, k, T)->UseRealTime();
      benchmark::RegisterBenchmark(("op/silu_mul/" + k + "/T:" + std::to_string(T)).c_str(), bm_silu, k, T)->UseRealTime();
      benchmark::RegisterBenchmark(("op/rope/" + k + "/T:" + std::to_string(T)).c_str(), bm_rope, k, T)->UseRealTime();
      benchmark::RegisterBenchmark(("op/moe_route/" + k + "/T:" + std::to_string(T)).c_str(), bm_moe_route, k, T)->UseRealTime();
    }
    for (int64_t ctx : {128, 1024, 4096})
      benchmark::RegisterBenchmark(("op/mla_attention/" + k + "/T:1/ctx:" + std::to_string(ctx)).c_str(),
                                   bm_mla_attention, k, int64_t(1), ctx)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    for (int64_t T : {1, 4}) {
      benchmark::RegisterBenchmark(("op/mla_absorb_q/" + k + "/T:" + std::to_string(T)).c_str(), bm_mla_kv_b, k, T, true)
          ->UseRealTime()->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("op/mla_expand_v/" + k + "/T:" + std::to_string(T)).c_str(), bm_mla_kv_b, k, T, false)
          ->UseRealTime()->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("op/moe_experts/" + k + "/T:" + std::to_string(T)).c_str(), bm_moe_experts, k, T)
          ->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(0.5);
    }
  }
}

}  // namespace mmfp4
