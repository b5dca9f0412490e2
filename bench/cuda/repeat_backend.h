// A measurement decorator for bench_cuda_decode (--repeat): forwards every Backend call to the real backend and
// issues chosen ops once more (or n more times). Recorded into a step graph, the extra copy shows what that op
// costs where it runs — inside the replayed step, behind its neighbours' programmatic dependent launches — which
// neither an eager per-op timer (a sync around each op) nor Nsight Compute (kernels serialised, clocks idling
// between replays) reports. The step's output is wrong while ops repeat (accumulating ops add twice): timing only.
//
// Spec: comma-separated `op[=n]`, op one of the Backend op names below, or `linear:TEXT` for the linear layers
// whose weight name contains TEXT (e.g. `linear:o_proj`); n extra issues (default 1). Empty: a plain forwarder.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"

namespace mmfp4 {

class RepeatBackend final : public Backend {
 public:
  explicit RepeatBackend(Backend& inner) : b_(inner) {}

  // Replaces the spec (graphs recorded before keep the old one: re-record them).
  void set_spec(const std::string& spec) {
    ops_.clear();
    linears_.clear();
    std::stringstream ss(spec);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.empty()) continue;
      int n = 1;
      const size_t eq = item.find('=');
      if (eq != std::string::npos) {
        n = std::atoi(item.c_str() + eq + 1);
        item = item.substr(0, eq);
      }
      if (n < 0 || n > 16) fail("--repeat: count of '", item, "' must be 0..16");
      if (item.rfind("linear:", 0) == 0) {
        linears_.emplace_back(item.substr(7), n);
      } else {
        static const char* known[] = {"embed", "rmsnorm", "hadamard", "rope", "silu_mul", "add", "add_bias",
                                      "gather_rows", "kv_store", "attention", "mla_store", "mla_prepare",
                                      "mla_attention", "mla_absorb_q", "mla_expand_v", "moe_route", "moe_router",
                                      "moe_experts", "argmax_rows"};
        bool ok = false;
        for (const char* k : known) ok = ok || item == k;
        if (!ok) fail("--repeat: unknown op '", item, "' (Backend op names, or linear:TEXT)");
        ops_[item] = n;
      }
    }
  }

  // Extra issues inside recorded graphs and graphs recorded since the last reset (every bucket's graph issues the same
  // ops, so extra() / graphs() after Model::prepare_graphs is what the spec adds to one step's graph), and extra
  // issues outside graphs (eager(): ops a step issues after its graph, as the greedy argmax, and eager prefills).
  int64_t extra() const { return extra_; }
  int64_t graphs() const { return graphs_; }
  int64_t eager() const { return eager_; }
  void reset_extra() { extra_ = graphs_ = eager_ = 0; }

  std::string name() const override { return b_.name(); }
  bool is_cpu() const override { return b_.is_cpu(); }
  void* alloc(size_t bytes, const std::string& what) override { return b_.alloc(bytes, what); }
  void release(void* p) override { b_.release(p); }
  void upload(void* dst, const void* src, size_t bytes) override { b_.upload(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { b_.download(dst, src, bytes); }
  size_t free_memory() const override { return b_.free_memory(); }
  DType kv_dtype() const override { return b_.kv_dtype(); }
  std::unique_ptr<LinearWeight> upload_linear(const HostWeight& w) override { return b_.upload_linear(w); }
  std::unique_ptr<ExpertWeights> upload_experts(const std::vector<HostWeight>& gate, const std::vector<HostWeight>& up,
                                                const std::vector<HostWeight>& down) override {
    return b_.upload_experts(gate, up, down);
  }

  void embed(const LinearWeight& t, const BatchMeta& m, Act out) override {
    rep("embed", [&] { b_.embed(t, m, out); });
  }
  void rmsnorm(Act x, const DeviceVector& w, float eps, Act out) override {
    rep("rmsnorm", [&] { b_.rmsnorm(x, w, eps, out); });
  }
  void linear(Act x, const LinearWeight& w, Act out, bool acc, bool rotated) override {
    int n = 0;
    for (const auto& [text, c] : linears_)
      if (w.name.find(text) != std::string::npos) n = c;
    for (int i = 0; i <= n; ++i) b_.linear(x, w, out, acc, rotated);
    count(n);
  }
  void hadamard(Act x, int block) override { rep("hadamard", [&] { b_.hadamard(x, block); }); }
  void rope(Act x, int64_t heads, int64_t hs, int64_t off, const RopeTable& t, const BatchMeta& m) override {
    rep("rope", [&] { b_.rope(x, heads, hs, off, t, m); });
  }
  void silu_mul(Act g, Act u, Act out) override { rep("silu_mul", [&] { b_.silu_mul(g, u, out); }); }
  void add(Act x, Act y) override { rep("add", [&] { b_.add(x, y); }); }
  void add_bias(Act x, const DeviceVector& bias) override { rep("add_bias", [&] { b_.add_bias(x, bias); }); }
  void gather_rows(Act x, const int32_t* rows, int64_t n, Act out) override {
    rep("gather_rows", [&] { b_.gather_rows(x, rows, n, out); });
  }
  void kv_store(const KVLayerView& kv, Act k, Act v, const BatchMeta& m) override {
    rep("kv_store", [&] { b_.kv_store(kv, k, v, m); });
  }
  void attention(Act q, const KVLayerView& kv, int64_t heads, int64_t kvh, int64_t D, float scale, const BatchMeta& m,
                 Act out) override {
    rep("attention", [&] { b_.attention(q, kv, heads, kvh, D, scale, m, out); });
  }
  void mla_store(const KVLayerView& kv, Act latent, Act kpe, const BatchMeta& m) override {
    rep("mla_store", [&] { b_.mla_store(kv, latent, kpe, m); });
  }
  void mla_prepare(Act ckv, const DeviceVector& nw, float eps, Act latent, Act q, int64_t heads, int64_t hs,
                   int64_t q_off, int had, const RopeTable& t, const KVLayerView& kv, const BatchMeta& m) override {
    rep("mla_prepare", [&] { b_.mla_prepare(ckv, nw, eps, latent, q, heads, hs, q_off, had, t, kv, m); });
  }
  void mla_attention(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale, const BatchMeta& m,
                     Act out) override {
    rep("mla_attention", [&] { b_.mla_attention(q_lat, q_pe, kv, heads, scale, m, out); });
  }
  void mla_absorb_q(Act q_nope, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v,
                    Act q_lat) override {
    rep("mla_absorb_q", [&] { b_.mla_absorb_q(q_nope, kv_b, heads, nope, v, q_lat); });
  }
  void mla_expand_v(Act o_lat, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v, Act out) override {
    rep("mla_expand_v", [&] { b_.mla_expand_v(o_lat, kv_b, heads, nope, v, out); });
  }
  void moe_route(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids, float* w) override {
    rep("moe_route", [&] { b_.moe_route(logits, bias, p, ids, w); });
  }
  void moe_router(Act h, const LinearWeight& rw, Act logits, const DeviceVector* bias, const RouterParams& p,
                  int32_t* ids, float* w) override {
    rep("moe_router", [&] { b_.moe_router(h, rw, logits, bias, p, ids, w); });
  }
  void moe_experts(Act x, const int32_t* ids, const float* w, int64_t K, const ExpertWeights& ew, Act out) override {
    rep("moe_experts", [&] { b_.moe_experts(x, ids, w, K, ew, out); });
  }
  void sync() override { b_.sync(); }
  void reserve_workspace(const WorkspacePlan& plan) override { b_.reserve_workspace(plan); }
  void argmax_rows(Act x, int32_t* ids) override { rep("argmax_rows", [&] { b_.argmax_rows(x, ids); }); }
  double device_read_gbs(size_t bytes) override { return b_.device_read_gbs(bytes); }
  bool supports_graphs() const override { return b_.supports_graphs(); }
  void begin_graph() override {
    ++graphs_;
    capturing_ = true;
    b_.begin_graph();
  }
  std::unique_ptr<StepGraph> end_graph() override {
    capturing_ = false;
    return b_.end_graph();
  }
  void replay_graph(const StepGraph& g) override { b_.replay_graph(g); }

 private:
  template <typename F>
  void rep(const char* op, F&& f) {
    const auto it = ops_.find(op);
    const int n = it == ops_.end() ? 0 : it->second;
    for (int i = 0; i <= n; ++i) f();
    count(n);
  }
  void count(int n) { (capturing_ ? extra_ : eager_) += n; }

  Backend& b_;
  bool capturing_ = false;
  int64_t extra_ = 0, graphs_ = 0, eager_ = 0;
  std::map<std::string, int> ops_;
  std::vector<std::pair<std::string, int>> linears_;
};

}  // namespace mmfp4
