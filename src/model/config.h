// The model configuration, read from a Hugging Face config.json the way transformers 5.17 reads it (see
// docs/models.md): both RoPE spellings (rope_scaling + rope_theta, or rope_parameters), nested text_config,
// mlp_layer_types, the per-architecture rules for which layers are MoE, and both expert-count keys.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace mmfp4 {

enum class RopeType { Default, Linear, Dynamic, Yarn, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  int dim = 0;                      // rotary dimensions (head_dim * partial_rotary_factor, or qk_rope_head_dim)
  bool interleaved = false;         // MLA models: pairs (2i, 2i+1); otherwise rotate-half
  double factor = 1.0;              // linear / dynamic / yarn / llama3
  double low_freq_factor = 1.0;     // llama3
  double high_freq_factor = 4.0;    // llama3
  int64_t original_max_position = 0;
  double beta_fast = 32.0, beta_slow = 1.0;  // yarn
  double mscale = 0.0, mscale_all_dim = 0.0; // yarn
  double attention_factor = -1.0;   // yarn: < 0 means derive from mscale (docs/models.md)
  bool truncate = true;             // yarn

  // Inverse frequencies [dim / 2] after scaling, and the factor cos/sin are multiplied by.
  std::vector<float> inv_freq() const;
  float cos_sin_scale() const;
};

enum class FfnKind { Dense, MoE };
enum class RouterKind { Softmax, Sigmoid };

struct ModelConfig {
  std::string model_type;   // "llama", "qwen3", "qwen3_moe", "deepseek_v3", "glm4_moe_lite"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;            // GQA models
  int64_t intermediate_size = 0;   // dense FFN width
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;     // q/k/v biases (llama attention_bias)
  bool qk_norm = false;            // qwen3: per-head RMSNorm on q and k
  int64_t max_position_embeddings = 0;
  RopeConfig rope;

  // MLA (deepseek_v3, glm4_moe_lite)
  bool mla = false;
  int64_t q_lora_rank = 0;         // 0: no q LoRA (q_proj)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  double mla_softmax_scale = 0;    // derived (docs/models.md, "Softmax scale for MLA")

  // MoE
  std::vector<FfnKind> layer_ffn;  // per layer
  RouterKind router = RouterKind::Softmax;
  int64_t n_routed_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t n_shared_experts = 0;
  int64_t n_group = 1, topk_group = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;

  // Tokens
  std::vector<int64_t> eos_token_ids;
  int64_t bos_token_id = -1;

  std::string weight_prefix = "model.";  // "model.language_model." for some multimodal checkpoints (set at load)

  // Parses config.json text; `path` names it in errors. Throws mmfp4::Error naming the field on any problem.
  static ModelConfig parse(const json::Value& root, const std::string& path);
  static ModelConfig load(const std::string& dir);  // dir/config.json

  bool is_moe_layer(int64_t i) const { return layer_ffn[size_t(i)] == FfnKind::MoE; }
  // Attention geometry shared by both kinds: the width q and the output projection see.
  int64_t q_head_dim() const { return mla ? qk_nope_head_dim + qk_rope_head_dim : head_dim; }
  int64_t attn_v_dim() const { return mla ? v_head_dim : head_dim; }
  float softmax_scale() const;
  // KV cache values per token and layer: GQA 2 * kv_heads * head_dim; MLA kv_lora_rank + qk_rope_head_dim.
  int64_t kv_values_per_token_layer() const;
  std::string summary() const;  // one line: "glm4_moe_lite: 47 layers, hidden 2048, MLA ..., 64 experts top 4"
};

}  // namespace mmfp4
