// Grouped-query attention (llama, qwen3, qwen3_moe): q/k/v projections (optional biases), optional per-head
// RMSNorm on q and k (qwen3) before RoPE, paged-cache attention, output projection added into the residual.
#include "core/error.h"
#include "model/blocks.h"

namespace mmfp4 {

namespace {

class GqaAttention final : public AttentionBlock {
 public:
  GqaAttention(LoadContext& lc, int64_t layer) {
    const auto& c = lc.cfg;
    H_ = c.num_heads;
    KVH_ = c.num_kv_heads;
    D_ = c.head_dim;
    eps_ = float(c.rms_norm_eps);
    scale_ = c.softmax_scale();
    const std::string p = lc.layer_prefix(layer) + "self_attn.";
    q_ = lc.linear(p + "q_proj.weight", H_ * D_, c.hidden_size);        // [H*D, hidden]
    k_ = lc.linear(p + "k_proj.weight", KVH_ * D_, c.hidden_size);      // [KVH*D, hidden]
    v_ = lc.linear(p + "v_proj.weight", KVH_ * D_, c.hidden_size);      // [KVH*D, hidden]
    o_ = lc.linear(p + "o_proj.weight", c.hidden_size, H_ * D_);        // [hidden, H*D]
    if (c.attention_bias) {
      q_bias_ = lc.vector(p + "q_proj.bias", H_ * D_);
      k_bias_ = lc.vector(p + "k_proj.bias", KVH_ * D_);
      v_bias_ = lc.vector(p + "v_proj.bias", KVH_ * D_);
    }
    if (c.qk_norm) {
      q_norm_ = lc.vector(p + "q_norm.weight", D_);  // [D], shared by all heads
      k_norm_ = lc.vector(p + "k_norm.weight", D_);
    }
    bq_ = scratch.add(H_ * D_);
    bk_ = scratch.add(KVH_ * D_);
    bv_ = scratch.add(KVH_ * D_);
    bo_ = scratch.add(H_ * D_);
  }

  void forward(ForwardContext& ctx, Act h, Act x) override {
    Backend& be = ctx.be;
    const int64_t T = ctx.T();
    Act q = scratch.get(bq_, T), k = scratch.get(bk_, T), v = scratch.get(bv_, T), o = scratch.get(bo_, T);
    be.linear(h, *q_, q, false);
    be.linear(h, *k_, k, false);
    be.linear(h, *v_, v, false);
    if (q_bias_.data) {
      be.add_bias(q, q_bias_);
      be.add_bias(k, k_bias_);
      be.add_bias(v, v_bias_);
    }
    ctx.after("attn.qkv", q);
    if (q_norm_.data) {
      // Per-head norm: view [T, H*D] as [T*H, D].
      Act qh(q.data, T * H_, D_), kh(k.data, T * KVH_, D_);
      be.rmsnorm(qh, q_norm_, eps_, qh);
      be.rmsnorm(kh, k_norm_, eps_, kh);
      ctx.after("attn.qk_norm", q);
    }
    be.rope(q, H_, D_, 0, ctx.rope, ctx.batch);
    be.rope(k, KVH_, D_, 0, ctx.rope, ctx.batch);
    const KVLayerView kv = ctx.kv.layer(ctx.layer);
    be.kv_store(kv, k, v, ctx.batch);
    be.attention(q, kv, H_, KVH_, D_, scale_, ctx.batch, o);
    ctx.after("attn.softmax_v", o);
    be.linear(o, *o_, x, /*accumulate=*/true);
    ctx.after("attn.o_proj+residual", x);
  }

 private:
  int64_t H_, KVH_, D_;
  float eps_, scale_;
  std::unique_ptr<LinearWeight> q_, k_, v_, o_;
  DeviceVector q_bias_, k_bias_, v_bias_, q_norm_, k_norm_;
  int bq_, bk_, bv_, bo_;
};

}  // namespace

std::unique_ptr<AttentionBlock> make_gqa_attention(LoadContext& lc, int64_t layer) {
  return std::make_unique<GqaAttention>(lc, layer);
}

}  // namespace mmfp4
