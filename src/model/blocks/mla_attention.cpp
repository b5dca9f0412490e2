// Multi-head latent attention (deepseek_v3, glm4_moe_lite), absorbed form (docs/models.md):
//   cq  = rmsnorm(h Wq_a^T) (q LoRA) ; q = cq Wq_b^T      or  q = h Wq^T         q [T, H*(nope+rope)]
//   ckv = h Wkv_a^T = [c | kpe]                          c [T, R] normalised, kpe [T, P] rotated: both cached
//   q_lat_h = W_UK_h^T q_nope_h,  scores = q_lat_h . c_t + rope(q_pe_h) . kpe_t,  o_lat_h = sum_t p_t c_t
//   o_h = W_UV_h o_lat_h ; x += concat_h(o_h) Wo^T
// kv_b_proj is never decompressed: its two halves are applied per head by the backend, so the cache holds only
// R + P values per token and layer. If kv_b_proj is Hadamard-rotated (W = W' H along R), we cache H c and apply the
// stored W' directly (H is orthonormal and symmetric, so q_lat . c = (W'^T q_nope) . (H c)).
#include "core/error.h"
#include "model/blocks.h"

namespace mmfp4 {

namespace {

constexpr float kMlaNormEps = 1e-6f;  // transformers does not pass rms_norm_eps to q_a/kv_a layernorms

class MlaAttention final : public AttentionBlock {
 public:
  MlaAttention(LoadContext& lc, int64_t layer) {
    const auto& c = lc.cfg;
    H_ = c.num_heads;
    R_ = c.kv_lora_rank;
    P_ = c.qk_rope_head_dim;
    NOPE_ = c.qk_nope_head_dim;
    V_ = c.v_head_dim;
    scale_ = c.softmax_scale();
    const int64_t QK = NOPE_ + P_, hidden = c.hidden_size;
    const std::string p = lc.layer_prefix(layer) + "self_attn.";
    Q_ = c.q_lora_rank;
    if (c.q_lora_rank > 0) {
      // q_a and kv_a read the same input: one weight [q_lora + R + P, hidden] when stored alike (one product).
      qkv_a_ = lc.linear_rows({{p + "q_a_proj.weight", Q_}, {p + "kv_a_proj_with_mqa.weight", R_ + P_}}, hidden);
      if (!qkv_a_) q_a_ = lc.linear(p + "q_a_proj.weight", c.q_lora_rank, hidden);  // [q_lora, hidden]
      q_a_norm_ = lc.vector(p + "q_a_layernorm.weight", c.q_lora_rank);
      q_b_ = lc.linear(p + "q_b_proj.weight", H_ * QK, c.q_lora_rank);     // [H*(nope+rope), q_lora]
      bcq_ = scratch.add(c.q_lora_rank);  // q_a's output, or (fused q_a + kv_a) its normalised copy
    } else {
      q_b_ = lc.linear(p + "q_proj.weight", H_ * QK, hidden);              // [H*(nope+rope), hidden]
    }
    if (!qkv_a_) kv_a_ = lc.linear(p + "kv_a_proj_with_mqa.weight", R_ + P_, hidden);  // [R+P, hidden]
    kv_a_norm_ = lc.vector(p + "kv_a_layernorm.weight", R_);
    kv_b_ = lc.linear(p + "kv_b_proj.weight", H_ * (NOPE_ + V_), R_);      // [H*(nope+v), R]
    o_ = lc.linear(p + "o_proj.weight", hidden, H_ * V_);                 // [hidden, H*v]
    if (kv_b_->hadamard_block > 0 && R_ % kv_b_->hadamard_block != 0)
      fail(p, "kv_b_proj.weight: a Hadamard-rotated kv_b_proj needs kv_lora_rank (", R_,
           ") to be a multiple of its block size (", kv_b_->hadamard_block, ") for the absorbed latent cache");
    bq_ = scratch.add(H_ * QK);
    bckv_ = scratch.add(Q_ + R_ + P_);  // [cq | c | kpe] (fused q_a + kv_a), or [c | kpe]
    blat_ = scratch.add(R_);
    bqlat_ = scratch.add(H_ * R_);
    bolat_ = scratch.add(H_ * R_);
    bo_ = scratch.add(H_ * V_);
  }

  void forward(ForwardContext& ctx, Act h, Act x) override {
    Backend& be = ctx.be;
    const int64_t T = ctx.T(), QK = NOPE_ + P_;
    Act q = scratch.get(bq_, T);  // [T, H*(nope+rope)]
    Act ckv = scratch.get(bckv_, T).col_slice(0, R_ + P_);  // [T, R+P]
    Act cq;                                                 // [T, q_lora]
    if (qkv_a_) {
      Act all = scratch.get(bckv_, T);  // [T, q_lora + R + P]
      be.linear(h, *qkv_a_, all, false);
      cq = all.col_slice(0, Q_);
      ckv = all.col_slice(Q_, R_ + P_);
    } else if (q_a_) {
      cq = scratch.get(bcq_, T);
      be.linear(h, *q_a_, cq, false);
    }
    if (Q_ > 0) {
      // Out of place when q_a is part of the fused product (its output is not cq's own buffer): a device backend
      // may then compute the norm inside q_b's input staging (decode) instead of a launch of its own.
      Act cqn = qkv_a_ ? scratch.get(bcq_, T) : cq;
      be.rmsnorm(cq, q_a_norm_, kMlaNormEps, cqn);
      cq = cqn;
      ctx.after("attn.q_a+norm", cq);
    }
    be.linear(Q_ > 0 ? cq : h, *q_b_, q, false);
    ctx.after("attn.q_b", q);
    if (!qkv_a_) be.linear(h, *kv_a_, ckv, false);
    Act latent = scratch.get(blat_, T);  // [T, R]
    // latent = norm(c), rope on kpe and q's rope columns, latent rotated if kv_b is, both cached (one op).
    const KVLayerView kv = ctx.kv.layer(ctx.layer);
    be.mla_prepare(ckv, kv_a_norm_, kMlaNormEps, latent, q, H_, QK, NOPE_, kv_b_->hadamard_block, ctx.rope, kv,
                   ctx.batch);
    ctx.after("attn.kv_a+norm+rope", latent);

    // Per-head views [T*H, width] of q (no copies).
    Act q_nope(q.data, T * H_, NOPE_, QK), q_pe(q.data + NOPE_, T * H_, P_, QK);
    Act q_lat(scratch.get(bqlat_, T).data, T * H_, R_), o_lat(scratch.get(bolat_, T).data, T * H_, R_);
    be.mla_absorb_q(q_nope, *kv_b_, H_, NOPE_, V_, q_lat);
    ctx.after("attn.absorb_q", q_lat);
    be.mla_attention(q_lat, q_pe, kv, H_, scale_, ctx.batch, o_lat);
    ctx.after("attn.latent_softmax_v", o_lat);
    Act o(scratch.get(bo_, T).data, T * H_, V_);
    be.mla_expand_v(o_lat, *kv_b_, H_, NOPE_, V_, o);
    ctx.after("attn.expand_v", o);
    be.linear(scratch.get(bo_, T), *o_, x, /*accumulate=*/true);
    ctx.after("attn.o_proj+residual", x);
  }

 private:
  int64_t H_, R_, P_, NOPE_, V_, Q_ = 0;
  float scale_;
  std::unique_ptr<LinearWeight> qkv_a_, q_a_, q_b_, kv_a_, kv_b_, o_;
  DeviceVector q_a_norm_, kv_a_norm_;
  int bcq_ = -1, bq_, bckv_, blat_, bqlat_, bolat_, bo_;
};

}  // namespace

std::unique_ptr<AttentionBlock> make_mla_attention(LoadContext& lc, int64_t layer) {
  return std::make_unique<MlaAttention>(lc, layer);
}

}  // namespace mmfp4
