#include "model/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "format/model_folder.h"
#include "format/safetensors.h"
#include "model/config.h"
#include "model/manifest.h"

namespace mmfp4 {

namespace {

// GLM-4.7-Flash as published (zai-org/GLM-4.7-Flash config.json, transformers 5 spelling).
constexpr const char* kGlm47Flash = R"({
  "architectures": ["Glm4MoeLiteForCausalLM"],
  "model_type": "glm4_moe_lite",
  "attention_bias": false,
  "bos_token_id": 154822,
  "eos_token_id": [154820, 154827, 154829],
  "pad_token_id": 154820,
  "first_k_dense_replace": 1,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "intermediate_size": 10240,
  "kv_lora_rank": 512,
  "max_position_embeddings": 202752,
  "moe_intermediate_size": 1536,
  "n_group": 1,
  "n_routed_experts": 64,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 20,
  "num_experts_per_tok": 4,
  "num_hidden_layers": 47,
  "num_key_value_heads": 20,
  "num_nextn_predict_layers": 1,
  "q_lora_rank": 768,
  "qk_nope_head_dim": 192,
  "qk_rope_head_dim": 64,
  "rms_norm_eps": 1e-05,
  "rope_interleave": true,
  "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
  "routed_scaling_factor": 1.8,
  "tie_word_embeddings": false,
  "topk_group": 1,
  "v_head_dim": 256,
  "vocab_size": 154880,
  "dtype": "bfloat16"
})";

// xoshiro256** seeded by splitmix64: fast, and each chunk gets its own stream so output does not depend on the
// thread count.
struct Rng {
  uint64_t s[4];
  explicit Rng(uint64_t seed) {
    for (auto& x : s) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      x = z ^ (z >> 31);
    }
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
  // Approximately normal (sum of four uniforms), cheap.
  float normal() {
    uint64_t r = next();
    float a = 0;
    for (int i = 0; i < 4; ++i) a += float((r >> (16 * i)) & 0xffff) / 65536.0f;
    return (a - 2.0f) * 1.7320508f;
  }
};

struct Planned {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  enum Fill { Codes, Scales, F16Normal, F16Ones, F16Small, I32Value } fill;
  int32_t value = 0;
  size_t bytes() const {
    size_t n = dtype_size(dtype);
    for (int64_t d : shape) n *= size_t(d);
    return n;
  }
};

// Bytes [offset, offset + n) of tensor t, generated deterministically from (seed, tensor index, chunk index).
void fill_chunk(const Planned& t, uint64_t seed, size_t tensor_index, size_t chunk, uint8_t* out, size_t n) {
  Rng rng(seed ^ (uint64_t(tensor_index) << 32) ^ (uint64_t(chunk) * 0x9e3779b97f4a7c15ull));
  switch (t.fill) {
    case Planned::Codes: {
      for (size_t i = 0; i + 8 <= n; i += 8) {
        const uint64_t r = rng.next();
        std::memcpy(out + i, &r, 8);
      }
      break;
    }
    case Planned::Scales: {
      // std(E2M1 values) ~ 2.93 * scale: scale ~ 0.0068 for weights of std 0.02, jittered +-25%.
      auto* p = reinterpret_cast<uint16_t*>(out);
      for (size_t i = 0; i < n / 2; ++i)
        p[i] = f32_to_f16(0.0068f * (0.75f + 0.5f * float(rng.next() >> 40) / float(1 << 24)));
      break;
    }
    case Planned::F16Normal: {
      auto* p = reinterpret_cast<uint16_t*>(out);
      for (size_t i = 0; i < n / 2; ++i) p[i] = f32_to_f16(0.02f * rng.normal());
      break;
    }
    case Planned::F16Ones: {
      auto* p = reinterpret_cast<uint16_t*>(out);
      for (size_t i = 0; i < n / 2; ++i) p[i] = f32_to_f16(1.0f);
      break;
    }
    case Planned::F16Small: {
      auto* p = reinterpret_cast<uint16_t*>(out);
      for (size_t i = 0; i < n / 2; ++i) p[i] = f32_to_f16(0.01f * rng.normal());
      break;
    }
    case Planned::I32Value: {
      auto* p = reinterpret_cast<int32_t*>(out);
      for (size_t i = 0; i < n / 4; ++i) p[i] = t.value;
      break;
    }
  }
}

}  // namespace

json::Value builtin_config(const std::string& name) {
  if (name == "glm-4.7-flash" || name == "glm4.7-flash" || name == "GLM-4.7-Flash")
    return json::parse(kGlm47Flash, "built-in glm-4.7-flash config");
  fail("unknown model '", name, "' for --like (known: glm-4.7-flash)");
}

int64_t synthesize_checkpoint(const json::Value& config_in, const std::string& dst, const SynthOptions& opt,
                              const std::function<void(int64_t, int64_t)>& progress) {
  json::Value config = config_in;
  if (!config.is_object()) fail("synth: the config must be a JSON object");
  if (opt.layers > 0) {
    const int64_t L = config["num_hidden_layers"].as_int();
    if (opt.layers > L) fail("synth: --layers ", opt.layers, " exceeds the config's ", L, " layers");
    config.set("num_hidden_layers", opt.layers);
    if (const json::Value* t = config.find("mlp_layer_types"); t && t->is_array()) {
      json::Array a(t->as_array().begin(), t->as_array().begin() + opt.layers);
      config.set("mlp_layer_types", json::Value(std::move(a)));
    }
  }
  const ModelConfig cfg = ModelConfig::parse(config, "synth config");
  const std::vector<TensorSpec> specs = expected_tensors(cfg);
  const int G = opt.group_size;

  // Plan every tensor of the checkpoint (names and keys as docs/format.md section 2).
  std::vector<Planned> plan;
  for (const TensorSpec& s : specs) {
    if (s.optional) continue;
    if (s.role == TensorRole::Vector) {
      const bool bias = s.name.find("e_score_correction_bias") != std::string::npos ||
                        s.name.find(".bias") != std::string::npos;
      plan.push_back({s.name, DType::F16, s.shape, bias ? Planned::F16Small : Planned::F16Ones});
      continue;
    }
    const bool dense = s.role == TensorRole::Embedding || s.name == "lm_head.weight";
    const int64_t N = s.shape[0], K = s.shape[1];
    if (dense || K % 8 || K % G) {
      plan.push_back({s.name, DType::F16, s.shape, Planned::F16Normal});
      continue;
    }
    int64_t Ks = K;
    if (opt.hadamard_block > 0) Ks = (K + opt.hadamard_block - 1) / opt.hadamard_block * opt.hadamard_block;
    plan.push_back({s.name, DType::U32, {N, Ks / 8}, Planned::Codes});
    plan.push_back({s.name + ".scales", DType::F16, {N, Ks / G}, Planned::Scales});
    plan.push_back({s.name + ".group_size", DType::I32, {1}, Planned::I32Value, G});
    if (opt.hadamard_block > 0)
      plan.push_back({s.name + ".hadamard_block_size", DType::I32, {1}, Planned::I32Value, opt.hadamard_block});
  }
  // Shards of about shard_bytes, tensors in manifest order (a layer's tensors stay together).
  std::vector<std::vector<size_t>> shards(1);
  size_t cur = 0, total = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const size_t b = plan[i].bytes();
    if (cur > 0 && cur + b > size_t(opt.shard_bytes)) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += b;
    total += b;
  }

  prepare_output_folder("", dst, opt.force);
  const size_t n_shards = shards.size();
  std::vector<std::pair<std::string, std::string>> weight_map;
  ThreadPool& pool = ThreadPool::global();
  constexpr size_t kChunk = 8u << 20;
  const int64_t n_threads = pool.size();
  std::vector<uint8_t> buf(kChunk * size_t(n_threads));
  size_t done = 0;
  for (size_t sh = 0; sh < n_shards; ++sh) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", sh + 1, n_shards);
    SafetensorsWriter w(dst + "/" + fname);
    w.set_metadata("format", "pt");
    for (size_t i : shards[sh]) {
      w.declare(plan[i].name, plan[i].dtype, plan[i].shape);
      weight_map.emplace_back(plan[i].name, fname);
    }
    w.begin();
    for (size_t i : shards[sh]) {
      const size_t bytes = plan[i].bytes();
      const size_t n_chunks = (bytes + kChunk - 1) / kChunk;
      // Generate n_threads chunks in parallel, then write them in order.
      for (size_t c0 = 0; c0 < n_chunks; c0 += size_t(n_threads)) {
        const size_t c1 = std::min(n_chunks, c0 + size_t(n_threads));
        pool.run(int64_t(c1 - c0), [&](int64_t j, int) {
          const size_t c = c0 + size_t(j);
          const size_t n = std::min(kChunk, bytes - c * kChunk);
          fill_chunk(plan[i], opt.seed, i, c, buf.data() + size_t(j) * kChunk, n);
        });
        for (size_t c = c0; c < c1; ++c) {
          const size_t n = std::min(kChunk, bytes - c * kChunk);
          w.write(buf.data() + (c - c0) * kChunk, n);
          done += n;
          if (progress) progress(int64_t(done), int64_t(total));
        }
      }
    }
    w.finish();
  }
  json::Value meta = json::Value::object();
  meta.set("format", "mmfp4");
  meta.set("total_size", int64_t(total));
  write_index(dst, meta, weight_map);
  write_text_file(dst + "/config.json", json::dump_python(config, false, 2) + "\n");
  json::Value gen = json::Value::object();
  if (const json::Value* e = config.find("eos_token_id")) gen.set("eos_token_id", *e);
  if (const json::Value* b = config.find("bos_token_id")) gen.set("bos_token_id", *b);
  write_text_file(dst + "/generation_config.json", json::dump_python(gen, false, 2) + "\n");
  json::Value qc = json::Value::object();
  qc.set("format", "mmfp4_e2m1_marlin");
  qc.set("method", "synthetic");
  qc.set("group_size", G);
  qc.set("use_hadamard", opt.hadamard_block > 0);
  qc.set("hadamard_block_size", opt.hadamard_block > 0 ? opt.hadamard_block : 64);
  write_text_file(dst + "/quantization_config.json", json::dump_python(qc, false, 2) + "\n");
  return int64_t(total);
}

}  // namespace mmfp4
