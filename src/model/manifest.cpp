#include "model/manifest.h"

#include "core/error.h"

namespace mmfp4 {

namespace {

void add_mlp(std::vector<TensorSpec>& out, const std::string& p, int64_t hidden, int64_t width) {
  out.push_back({p + "gate_proj.weight", TensorRole::Linear, {width, hidden}});
  out.push_back({p + "up_proj.weight", TensorRole::Linear, {width, hidden}});
  out.push_back({p + "down_proj.weight", TensorRole::Linear, {hidden, width}});
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  const std::string& m = c.weight_prefix;  // "model."
  const int64_t H = c.hidden_size;
  out.push_back({m + "embed_tokens.weight", TensorRole::Embedding, {c.vocab_size, H}});
  out.push_back({m + "norm.weight", TensorRole::Vector, {H}});
  out.push_back({"lm_head.weight", TensorRole::Linear, {c.vocab_size, H}, c.tie_word_embeddings});

  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = m + "layers." + std::to_string(i) + ".";
    out.push_back({l + "input_layernorm.weight", TensorRole::Vector, {H}});
    out.push_back({l + "post_attention_layernorm.weight", TensorRole::Vector, {H}});
    const std::string a = l + "self_attn.";
    if (c.mla) {
      const int64_t qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
      if (c.q_lora_rank > 0) {
        out.push_back({a + "q_a_proj.weight", TensorRole::Linear, {c.q_lora_rank, H}});
        out.push_back({a + "q_a_layernorm.weight", TensorRole::Vector, {c.q_lora_rank}});
        out.push_back({a + "q_b_proj.weight", TensorRole::Linear, {c.num_heads * qk, c.q_lora_rank}});
      } else {
        out.push_back({a + "q_proj.weight", TensorRole::Linear, {c.num_heads * qk, H}});
      }
      out.push_back({a + "kv_a_proj_with_mqa.weight", TensorRole::Linear, {c.kv_lora_rank + c.qk_rope_head_dim, H}});
      out.push_back({a + "kv_a_layernorm.weight", TensorRole::Vector, {c.kv_lora_rank}});
      out.push_back({a + "kv_b_proj.weight", TensorRole::Linear,
                     {c.num_heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}});
      out.push_back({a + "o_proj.weight", TensorRole::Linear, {H, c.num_heads * c.v_head_dim}});
    } else {
      const int64_t D = c.head_dim;
      out.push_back({a + "q_proj.weight", TensorRole::Linear, {c.num_heads * D, H}});
      out.push_back({a + "k_proj.weight", TensorRole::Linear, {c.num_kv_heads * D, H}});
      out.push_back({a + "v_proj.weight", TensorRole::Linear, {c.num_kv_heads * D, H}});
      out.push_back({a + "o_proj.weight", TensorRole::Linear, {H, c.num_heads * D}});
      if (c.attention_bias) {
        out.push_back({a + "q_proj.bias", TensorRole::Vector, {c.num_heads * D}});
        out.push_back({a + "k_proj.bias", TensorRole::Vector, {c.num_kv_heads * D}});
        out.push_back({a + "v_proj.bias", TensorRole::Vector, {c.num_kv_heads * D}});
      }
      if (c.qk_norm) {
        out.push_back({a + "q_norm.weight", TensorRole::Vector, {D}});
        out.push_back({a + "k_norm.weight", TensorRole::Vector, {D}});
      }
    }
    const std::string f = l + "mlp.";
    if (!c.is_moe_layer(i)) {
      add_mlp(out, f, H, c.intermediate_size);
      continue;
    }
    out.push_back({f + "gate.weight", TensorRole::Linear, {c.n_routed_experts, H}});
    if (c.router == RouterKind::Sigmoid)
      out.push_back({f + "gate.e_score_correction_bias", TensorRole::Vector, {c.n_routed_experts}});
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      add_mlp(out, f + "experts." + std::to_string(e) + ".", H, c.moe_intermediate_size);
    if (c.n_shared_experts > 0) add_mlp(out, f + "shared_experts.", H, c.moe_intermediate_size * c.n_shared_experts);
  }
  return out;
}

void detect_weight_prefix(ModelConfig& c, const Checkpoint& ck) {
  if (!ck.find(c.weight_prefix + "embed_tokens.weight") && ck.find("model.language_model.embed_tokens.weight"))
    c.weight_prefix = "model.language_model.";
}

}  // namespace mmfp4
