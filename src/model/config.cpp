#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"

namespace mmfp4 {

namespace {

// Typed field access with errors that name the file and the field.
struct Fields {
  const json::Value& obj;
  const std::string& path;

  const json::Value* raw(const char* key) const {
    const json::Value* v = obj.find(key);
    return (v && !v->is_null()) ? v : nullptr;
  }
  int64_t get_int(const char* key, int64_t def, bool required = false) const {
    const json::Value* v = raw(key);
    if (!v) {
      if (required) fail(path, ": field '", key, "' is required");
      return def;
    }
    if (!v->is_number()) fail(path, ": field '", key, "' must be an integer, got ", json::Value::type_name(v->type()));
    double d = v->as_double();
    if (d != std::floor(d)) fail(path, ": field '", key, "' must be an integer, got ", d);
    return int64_t(d);
  }
  int64_t get_pos_int(const char* key, int64_t def, bool required = false) const {
    int64_t v = get_int(key, def, required);
    if (raw(key) && v <= 0) fail(path, ": field '", key, "' must be positive, got ", v);
    return v;
  }
  double get_double(const char* key, double def) const {
    const json::Value* v = raw(key);
    if (!v) return def;
    if (!v->is_number()) fail(path, ": field '", key, "' must be a number, got ", json::Value::type_name(v->type()));
    return v->as_double();
  }
  bool get_bool(const char* key, bool def) const {
    const json::Value* v = raw(key);
    if (!v) return def;
    if (!v->is_bool()) fail(path, ": field '", key, "' must be true or false, got ", json::Value::type_name(v->type()));
    return v->as_bool();
  }
  std::string get_string(const char* key, const std::string& def) const {
    const json::Value* v = raw(key);
    if (!v) return def;
    if (!v->is_string()) fail(path, ": field '", key, "' must be a string");
    return v->as_string();
  }
};

double yarn_get_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

std::vector<float> RopeConfig::inv_freq() const {
  const int half = dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    // As transformers: exponent 2i/d in float32, theta^exponent, then 1/x, all rounded to float32.
    float expo = float(2 * i) / float(dim);
    float pos_freq = float(std::pow(theta, double(expo)));
    inv[size_t(i)] = 1.0f / pos_freq;
  }
  switch (type) {
    case RopeType::Default:
    case RopeType::Dynamic:
      break;
    case RopeType::Linear:
      for (auto& f : inv) f = float(double(f) / factor);
      break;
    case RopeType::Llama3: {
      const double L = double(original_max_position);
      const double low_wl = L / low_freq_factor, high_wl = L / high_freq_factor;
      for (auto& f : inv) {
        double wl = 2.0 * M_PI / double(f);
        if (wl < high_wl) continue;
        if (wl > low_wl) {
          f = float(double(f) / factor);
        } else {
          double s = (L / wl - low_freq_factor) / (high_freq_factor - low_freq_factor);
          f = float((1.0 - s) * double(f) / factor + s * double(f));
        }
      }
      break;
    }
    case RopeType::Yarn: {
      const double O = double(original_max_position);
      auto cdim = [&](double r) { return double(dim) * std::log(O / (2.0 * M_PI * r)) / (2.0 * std::log(theta)); };
      double low = cdim(beta_fast), high = cdim(beta_slow);
      if (truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, double(dim - 1));
      if (low == high) high += 0.001;
      for (int i = 0; i < half; ++i) {
        float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
        float extra = inv[size_t(i)];
        float inter = float(double(extra) / factor);
        // transformers: interp * (1 - extrapolation_factor) + extrap * extrapolation_factor, factor = 1 - ramp
        float ef = 1.0f - ramp;
        inv[size_t(i)] = inter * (1.0f - ef) + extra * ef;
      }
      break;
    }
  }
  return inv;
}

float RopeConfig::cos_sin_scale() const {
  if (type != RopeType::Yarn) return 1.0f;
  if (attention_factor >= 0) return float(attention_factor);
  if (mscale != 0 && mscale_all_dim != 0) return float(yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim));
  return float(yarn_get_mscale(factor, 1.0));
}

ModelConfig ModelConfig::load(const std::string& dir) {
  std::string path = dir + "/config.json";
  if (!file_exists(path)) fail(dir, ": no config.json (is this a Hugging Face model folder?)");
  json::Value root = json::parse(read_file(path), path);
  return parse(root, path);
}

ModelConfig ModelConfig::parse(const json::Value& root_in, const std::string& path) {
  if (!root_in.is_object()) fail(path, ": the top level must be a JSON object");
  // Multimodal wrappers keep the language model's config under text_config.
  const json::Value& root = root_in.contains("text_config") && root_in["text_config"].is_object()
                                ? root_in["text_config"]
                                : root_in;
  Fields f{root, path};
  ModelConfig c;
  c.model_type = f.get_string("model_type", "");
  if (c.model_type.empty()) c.model_type = Fields{root_in, path}.get_string("model_type", "");
  if (c.model_type.empty()) fail(path, ": field 'model_type' is required");
  static const char* kSupported[] = {"llama", "qwen3", "qwen3_moe", "deepseek_v3", "glm4_moe_lite"};
  bool ok = false;
  for (const char* s : kSupported) ok |= c.model_type == s;
  if (!ok)
    fail(path, ": model_type '", c.model_type,
         "' is not supported (supported: llama, qwen3, qwen3_moe, deepseek_v3, glm4_moe_lite)");

  const std::string act = f.get_string("hidden_act", "silu");
  if (act != "silu") fail(path, ": hidden_act '", act, "' is not supported (only silu)");
  if (f.get_bool("mlp_bias", false)) fail(path, ": mlp_bias = true is not supported");

  c.vocab_size = f.get_pos_int("vocab_size", 0, true);
  c.hidden_size = f.get_pos_int("hidden_size", 0, true);
  c.num_layers = f.get_pos_int("num_hidden_layers", 0, true);
  c.num_heads = f.get_pos_int("num_attention_heads", 0, true);
  c.num_kv_heads = f.get_pos_int("num_key_value_heads", c.num_heads);
  c.intermediate_size = f.get_pos_int("intermediate_size", 0);
  c.rms_norm_eps = f.get_double("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0)) fail(path, ": rms_norm_eps must be positive");
  c.tie_word_embeddings = f.get_bool("tie_word_embeddings", c.model_type == "qwen3" ? false : false);
  c.attention_bias = f.get_bool("attention_bias", false);
  c.max_position_embeddings = f.get_pos_int("max_position_embeddings", 4096);
  c.mla = c.model_type == "deepseek_v3" || c.model_type == "glm4_moe_lite";
  c.qk_norm = c.model_type == "qwen3" || c.model_type == "qwen3_moe";

  // --- RoPE ---
  const json::Value* rp = f.raw("rope_parameters");
  if (!rp) rp = f.raw("rope_scaling");
  if (rp && !rp->is_object()) fail(path, ": rope_parameters / rope_scaling must be an object");
  json::Value empty = json::Value::object();
  Fields r{rp ? *rp : empty, path};
  c.rope.theta = r.get_double("rope_theta", f.get_double("rope_theta", 10000.0));
  std::string rtype = r.get_string("rope_type", r.get_string("type", "default"));
  if (rtype == "default") c.rope.type = RopeType::Default;
  else if (rtype == "linear") c.rope.type = RopeType::Linear;
  else if (rtype == "dynamic") c.rope.type = RopeType::Dynamic;
  else if (rtype == "yarn") c.rope.type = RopeType::Yarn;
  else if (rtype == "llama3") c.rope.type = RopeType::Llama3;
  else fail(path, ": rope_type '", rtype, "' is not supported (default, linear, dynamic, yarn, llama3)");
  c.rope.factor = r.get_double("factor", 1.0);
  c.rope.low_freq_factor = r.get_double("low_freq_factor", 1.0);
  c.rope.high_freq_factor = r.get_double("high_freq_factor", 4.0);
  c.rope.original_max_position = r.get_int("original_max_position_embeddings", 0);
  c.rope.beta_fast = r.get_double("beta_fast", 32.0);
  c.rope.beta_slow = r.get_double("beta_slow", 1.0);
  c.rope.mscale = r.get_double("mscale", 0.0);
  c.rope.mscale_all_dim = r.get_double("mscale_all_dim", 0.0);
  c.rope.attention_factor = r.get_double("attention_factor", -1.0);
  c.rope.truncate = r.get_bool("truncate", true);
  if (c.rope.type == RopeType::Yarn) {
    if (!r.raw("factor")) {
      if (c.rope.original_max_position <= 0) fail(path, ": yarn RoPE needs 'factor' or 'original_max_position_embeddings'");
      c.rope.factor = double(c.max_position_embeddings) / double(c.rope.original_max_position);
    }
    if (c.rope.original_max_position <= 0) c.rope.original_max_position = c.max_position_embeddings;
  }
  if (c.rope.type == RopeType::Llama3 && c.rope.original_max_position <= 0)
    fail(path, ": llama3 RoPE needs 'original_max_position_embeddings'");
  if (c.rope.type == RopeType::Dynamic)
    fail(path, ": rope_type 'dynamic' (NTK scaling that changes with the sequence length) is not supported: it would "
               "invalidate the KV cache as the sequence grows");
  if ((c.rope.type != RopeType::Default) && !(c.rope.factor > 0)) fail(path, ": RoPE 'factor' must be positive");

  if (c.mla) {
    c.q_lora_rank = f.get_int("q_lora_rank", 0);
    if (c.q_lora_rank < 0) fail(path, ": q_lora_rank must be positive or null");
    c.kv_lora_rank = f.get_pos_int("kv_lora_rank", 0, true);
    c.qk_nope_head_dim = f.get_pos_int("qk_nope_head_dim", 0, true);
    c.qk_rope_head_dim = f.get_pos_int("qk_rope_head_dim", 0, true);
    c.v_head_dim = f.get_pos_int("v_head_dim", 0, true);
    if (c.qk_rope_head_dim % 2) fail(path, ": qk_rope_head_dim must be even");
    c.rope.dim = int(c.qk_rope_head_dim);
    c.rope.interleaved = f.get_bool("rope_interleave", true);
    c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
    double scale = 1.0 / std::sqrt(double(c.qk_nope_head_dim + c.qk_rope_head_dim));
    if (c.rope.type != RopeType::Default && c.rope.mscale_all_dim != 0) {
      double m = yarn_get_mscale(c.rope.factor, c.rope.mscale_all_dim);
      scale *= m * m;
    }
    c.mla_softmax_scale = scale;
  } else {
    c.head_dim = f.get_pos_int("head_dim", 0);
    if (c.head_dim == 0) {
      if (c.hidden_size % c.num_heads) fail(path, ": hidden_size is not divisible by num_attention_heads and head_dim is not given");
      c.head_dim = c.hidden_size / c.num_heads;
    }
    double prf = f.get_double("partial_rotary_factor", 1.0);
    c.rope.dim = int(double(c.head_dim) * prf);
    if (c.rope.dim <= 0 || c.rope.dim % 2 || c.rope.dim > c.head_dim)
      fail(path, ": rotary dimension ", c.rope.dim, " (head_dim x partial_rotary_factor) must be even and within head_dim");
    if (c.num_heads % c.num_kv_heads)
      fail(path, ": num_attention_heads (", c.num_heads, ") must be a multiple of num_key_value_heads (", c.num_kv_heads, ")");
  }

  // --- FFN layout ---
  c.layer_ffn.assign(size_t(c.num_layers), FfnKind::Dense);
  const bool moe_arch = c.model_type == "qwen3_moe" || c.mla;
  if (moe_arch) {
    if (c.model_type == "qwen3_moe") {
      c.router = RouterKind::Softmax;
      c.n_routed_experts = f.get_int("num_experts", f.get_int("num_local_experts", 0));
      c.norm_topk_prob = f.get_bool("norm_topk_prob", false);
      c.routed_scaling_factor = 1.0;
      c.n_shared_experts = 0;
    } else {
      c.router = RouterKind::Sigmoid;
      c.n_routed_experts = f.get_int("n_routed_experts", 0);
      c.n_shared_experts = f.get_int("n_shared_experts", 0);
      c.n_group = f.get_pos_int("n_group", 1);
      c.topk_group = f.get_pos_int("topk_group", 1);
      c.norm_topk_prob = f.get_bool("norm_topk_prob", true);
      c.routed_scaling_factor = f.get_double("routed_scaling_factor", 1.0);
      std::string scoring = f.get_string("scoring_func", "sigmoid");
      if (scoring != "sigmoid") fail(path, ": scoring_func '", scoring, "' is not supported for ", c.model_type);
    }
    if (c.n_routed_experts < 0) fail(path, ": the expert count must not be negative");
    c.num_experts_per_tok = f.get_int("num_experts_per_tok", 0);
    c.moe_intermediate_size = f.get_int("moe_intermediate_size", 0);

    if (const json::Value* types = f.raw("mlp_layer_types")) {
      if (!types->is_array() || int64_t(types->size()) != c.num_layers)
        fail(path, ": mlp_layer_types must be a list of num_hidden_layers (", c.num_layers, ") strings");
      for (size_t i = 0; i < types->size(); ++i) {
        const json::Value& t = (*types)[i];
        if (!t.is_string() || (t.as_string() != "dense" && t.as_string() != "sparse"))
          fail(path, ": mlp_layer_types[", i, "] must be \"dense\" or \"sparse\"");
        c.layer_ffn[i] = t.as_string() == "sparse" ? FfnKind::MoE : FfnKind::Dense;
      }
    } else if (c.model_type == "glm4_moe_lite") {
      for (int64_t i = 1; i < c.num_layers; ++i) c.layer_ffn[size_t(i)] = FfnKind::MoE;
    } else if (c.model_type == "deepseek_v3") {
      int64_t first_dense = f.get_int("first_k_dense_replace", 0);
      int64_t freq = f.get_pos_int("moe_layer_freq", 1);
      for (int64_t i = 0; i < c.num_layers; ++i)
        if (c.n_routed_experts > 0 && i >= first_dense && i % freq == 0) c.layer_ffn[size_t(i)] = FfnKind::MoE;
    } else {  // qwen3_moe
      int64_t step = f.get_pos_int("decoder_sparse_step", 1);
      std::vector<int64_t> only;
      if (const json::Value* m = f.raw("mlp_only_layers")) {
        if (!m->is_array()) fail(path, ": mlp_only_layers must be a list");
        for (const auto& x : m->as_array()) only.push_back(x.as_int());
      }
      for (int64_t i = 0; i < c.num_layers; ++i) {
        bool in_only = std::find(only.begin(), only.end(), i) != only.end();
        if (!in_only && c.n_routed_experts > 0 && (i + 1) % step == 0) c.layer_ffn[size_t(i)] = FfnKind::MoE;
      }
    }
    bool any_moe = false;
    for (auto k : c.layer_ffn) any_moe |= k == FfnKind::MoE;
    if (any_moe) {
      if (c.n_routed_experts <= 0) fail(path, ": MoE layers need a positive expert count");
      if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.n_routed_experts)
        fail(path, ": num_experts_per_tok must be in 1..", c.n_routed_experts);
      if (c.moe_intermediate_size <= 0) fail(path, ": moe_intermediate_size must be positive");
      if (c.n_routed_experts % c.n_group) fail(path, ": n_routed_experts must be a multiple of n_group");
      if (c.topk_group > c.n_group) fail(path, ": topk_group must not exceed n_group");
      if (c.router == RouterKind::Sigmoid && c.n_group > 1 && c.n_routed_experts / c.n_group < 2)
        fail(path, ": grouped routing needs at least 2 experts per group");
    }
  }
  bool any_dense = false;
  for (auto k : c.layer_ffn) any_dense |= k == FfnKind::Dense;
  if (any_dense && c.intermediate_size <= 0) fail(path, ": intermediate_size is required for dense layers");

  // --- tokens ---
  auto read_ids = [&](const json::Value* v, std::vector<int64_t>& out) {
    out.clear();
    if (!v) return;
    if (v->is_number()) out.push_back(v->as_int());
    else if (v->is_array())
      for (const auto& x : v->as_array()) out.push_back(x.as_int());
    else fail(path, ": eos_token_id must be an integer or a list of integers");
  };
  read_ids(f.raw("eos_token_id"), c.eos_token_ids);
  c.bos_token_id = f.get_int("bos_token_id", -1);
  return c;
}

float ModelConfig::softmax_scale() const {
  if (mla) return float(mla_softmax_scale);
  return float(1.0 / std::sqrt(double(head_dim)));
}

int64_t ModelConfig::kv_values_per_token_layer() const {
  return mla ? kv_lora_rank + qk_rope_head_dim : 2 * num_kv_heads * head_dim;
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << model_type << ": " << num_layers << " layers, hidden " << hidden_size << ", vocab " << vocab_size << ", ";
  if (mla)
    os << "MLA " << num_heads << " heads (q_lora " << q_lora_rank << ", kv_lora " << kv_lora_rank << ", nope "
       << qk_nope_head_dim << ", rope " << qk_rope_head_dim << ", v " << v_head_dim << ")";
  else
    os << "GQA " << num_heads << "/" << num_kv_heads << " heads x " << head_dim;
  int64_t n_moe = 0;
  for (auto k : layer_ffn) n_moe += k == FfnKind::MoE;
  if (n_moe)
    os << ", " << n_moe << " MoE layers (" << n_routed_experts << " experts top " << num_experts_per_tok
       << (n_shared_experts ? " + shared" : "") << ", " << (router == RouterKind::Sigmoid ? "sigmoid" : "softmax") << ")";
  return os.str();
}

}  // namespace mmfp4
