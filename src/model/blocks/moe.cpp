// Mixture of experts: a float32 router (softmax for qwen3_moe; sigmoid + correction bias + grouped top-k +
// scaling for deepseek_v3 / glm4_moe_lite), routed experts stacked at load and run over tokens grouped by expert,
// and an optional shared expert added with weight 1. A single shared expert of the routed experts' shape and format
// is stacked at load as expert E, and the router gives every token that expert in one more slot with weight 1
// (RouterParams::shared_id): the same sum, in the grouped expert products instead of three more launches.
#include "core/error.h"
#include "model/blocks.h"

namespace mmfp4 {

namespace {

class Moe final : public FfnBlock {
 public:
  Moe(LoadContext& lc, int64_t layer) {
    const auto& c = lc.cfg;
    const std::string p = lc.layer_prefix(layer) + "mlp.";
    const int64_t E = c.n_routed_experts, hidden = c.hidden_size, I = c.moe_intermediate_size;
    params_.sigmoid = c.router == RouterKind::Sigmoid;
    params_.n_experts = E;
    params_.top_k = c.num_experts_per_tok;
    params_.n_group = c.n_group;
    params_.topk_group = c.topk_group;
    params_.norm_topk_prob = c.norm_topk_prob;
    params_.routed_scaling_factor = float(c.routed_scaling_factor);
    router_ = lc.linear(p + "gate.weight", E, hidden);  // [E, hidden]; dense or quantized
    router_->exact = true;
    if (params_.sigmoid) bias_ = lc.vector(p + "gate.e_score_correction_bias", E);
    // Stack the experts: gate/up [E][I, hidden], down [E][hidden, I].
    std::vector<HostWeight> g, u, d;
    for (int64_t e = 0; e < E; ++e) {
      const std::string ep = p + "experts." + std::to_string(e) + ".";
      g.push_back(load_weight(lc.ck, ep + "gate_proj.weight", I, hidden, lc.qc));
      u.push_back(load_weight(lc.ck, ep + "up_proj.weight", I, hidden, lc.qc));
      d.push_back(load_weight(lc.ck, ep + "down_proj.weight", hidden, I, lc.qc));
      if (g.back().format != g[0].format || d.back().format != d[0].format ||
          g.back().hadamard_block != g[0].hadamard_block || d.back().hadamard_block != d[0].hadamard_block)
        fail(ep, "*: all experts of a layer must share one format and rotation (expert 0 differs from expert ", e, ")");
    }
    if (c.n_shared_experts == 1 && lc.fuse()) {
      const std::string sp = p + "shared_experts.";
      HostWeight sg = load_weight(lc.ck, sp + "gate_proj.weight", I, hidden, lc.qc);
      HostWeight su = load_weight(lc.ck, sp + "up_proj.weight", I, hidden, lc.qc);
      HostWeight sd = load_weight(lc.ck, sp + "down_proj.weight", hidden, I, lc.qc);
      auto alike = [](const HostWeight& a, const HostWeight& b) {
        return a.format == b.format && a.hadamard_block == b.hadamard_block && a.group_size == b.group_size &&
               a.k_stored == b.k_stored && (a.format != WeightFormat::Dense || a.dtype == b.dtype);
      };
      if (alike(sg, g[0]) && alike(su, u[0]) && alike(sd, d[0])) {
        g.push_back(std::move(sg));
        u.push_back(std::move(su));
        d.push_back(std::move(sd));
        params_.shared_id = E;
      }
    }
    experts_ = lc.be.upload_experts(g, u, d);
    lc.weight_bytes += experts_->bytes;
    if (c.n_shared_experts > 0 && params_.shared_id < 0)
      shared_ = make_dense_mlp(lc, p + "shared_experts.", I * c.n_shared_experts);
    blogits_ = scratch.add(E);
    bids_ = scratch.add(params_.slots());  // int32 stored in float-sized slots
    bw_ = scratch.add(params_.slots());
  }

  void forward(ForwardContext& ctx, Act h, Act x) override {
    const int64_t T = ctx.T();
    Act logits = scratch.get(blogits_, T);
    auto* ids = reinterpret_cast<int32_t*>(scratch.get(bids_, T).data);
    float* w = scratch.get(bw_, T).data;
    ctx.be.moe_router(h, *router_, logits, bias_.data ? &bias_ : nullptr, params_, ids, w);  // linear + routing
    ctx.after("moe.router_logits", logits);
    ctx.be.moe_experts(h, ids, w, params_.slots(), *experts_, x);
    ctx.after("moe.experts+residual", x);
    if (shared_) shared_->forward(ctx, h, x);
  }

  // The shared expert's buffers follow this block's own in the arena.
  int64_t scratch_width() const override {
    return scratch.total_width() + (shared_ ? shared_->scratch_width() : 0);
  }
  void bind(float* base, int64_t max_tokens) override {
    scratch.bind(base, max_tokens);
    if (shared_) shared_->bind(base + scratch.total_width() * max_tokens, max_tokens);
  }

 private:
  RouterParams params_;
  std::unique_ptr<LinearWeight> router_;
  DeviceVector bias_;
  std::unique_ptr<ExpertWeights> experts_;
  std::unique_ptr<FfnBlock> shared_;
  int blogits_, bids_, bw_;
};

}  // namespace

std::unique_ptr<FfnBlock> make_moe(LoadContext& lc, int64_t layer) { return std::make_unique<Moe>(lc, layer); }

}  // namespace mmfp4
