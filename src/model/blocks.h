// The shared building blocks of every architecture (GQA attention, MLA attention, SwiGLU MLP, MoE) and the two
// contexts they see: LoadContext (weights from a checkpoint onto a backend: all weight surgery happens here) and
// ForwardContext (one layer of one forward pass). An architecture file (archs/<model_type>.cpp) picks blocks per
// layer and registers itself; it never touches kernels or file formats.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "format/checkpoint.h"
#include "format/weight.h"
#include "kv/kv_cache.h"
#include "model/config.h"

namespace mmfp4 {

// A block's scratch buffers: widths declared at load, laid out at load in one arena shared by all blocks (they run
// one at a time), each [max_tokens, width] float32.
class Scratch {
 public:
  int add(int64_t width) {
    widths_.push_back(width);
    return int(widths_.size()) - 1;
  }
  int64_t total_width() const;
  // Called once by the model when the arena exists.
  void bind(float* base, int64_t max_tokens);
  // Buffer i for the first T rows.
  Act get(int i, int64_t T) const { return Act(ptrs_[size_t(i)], T, widths_[size_t(i)]); }

 private:
  std::vector<int64_t> widths_;
  std::vector<float*> ptrs_;
};

struct LoadContext {
  const ModelConfig& cfg;
  const Checkpoint& ck;
  const QuantConfig& qc;
  Backend& be;
  std::vector<void*>& owned;  // device allocations the model releases when it goes away (vectors)
  int64_t weight_bytes = 0;

  std::unique_ptr<LinearWeight> linear(const std::string& name, int64_t n, int64_t k);
  // Linears that read the same input as one weight, their rows one after another ([sum of n, k]; format/weight.h,
  // stack_rows): one product instead of several. Null when the checkpoint stores them in different formats (the
  // caller then loads them one by one).
  std::unique_ptr<LinearWeight> linear_rows(const std::vector<std::pair<std::string, int64_t>>& parts, int64_t k);
  bool fuse() const;  // load-time fusions on (MMFP4_FUSE_LINEARS=0 turns them off)
  DeviceVector vector(const std::string& name, int64_t n);
  std::string layer_prefix(int64_t layer) const {
    return cfg.weight_prefix + "layers." + std::to_string(layer) + ".";
  }
};

class Tracer;

struct ForwardContext {
  Backend& be;
  const ModelConfig& cfg;
  const BatchMeta& batch;
  KVCache& kv;
  const RopeTable& rope;
  int64_t layer = 0;
  Tracer* tracer = nullptr;  // --check / --verbose; null when off

  int64_t T() const { return batch.n_tokens; }
  // After each op: NaN/Inf check and per-op timing when enabled (no-op otherwise).
  void after(const char* op, Act out) const;
};

// A block: h [T, hidden] -> x += block(h). Its scratch buffers live in the model's shared arena.
class Block {
 public:
  virtual ~Block() = default;
  virtual void forward(ForwardContext& ctx, Act h, Act x) = 0;
  // Arena floats per token this block needs (sub-blocks included), and the binding of its buffers.
  virtual int64_t scratch_width() const { return scratch.total_width(); }
  virtual void bind(float* base, int64_t max_tokens) { scratch.bind(base, max_tokens); }
  Scratch scratch;
};
using AttentionBlock = Block;
using FfnBlock = Block;

struct DecoderLayer {
  DeviceVector input_norm, post_attention_norm;  // [hidden]
  std::unique_ptr<AttentionBlock> attn;
  std::unique_ptr<FfnBlock> ffn;
};

// The blocks (blocks/*.cpp).
std::unique_ptr<AttentionBlock> make_gqa_attention(LoadContext& lc, int64_t layer);
std::unique_ptr<AttentionBlock> make_mla_attention(LoadContext& lc, int64_t layer);
// SwiGLU MLP of `width` at `prefix` (e.g. "model.layers.0.mlp." or "...mlp.shared_experts.").
std::unique_ptr<FfnBlock> make_dense_mlp(LoadContext& lc, const std::string& prefix, int64_t width);
std::unique_ptr<FfnBlock> make_moe(LoadContext& lc, int64_t layer);

// Architecture registry: model_type -> function building layer `i`.
using LayerBuilder = DecoderLayer (*)(LoadContext& lc, int64_t layer);
bool register_architecture(const char* model_type, LayerBuilder build);
LayerBuilder find_architecture(const std::string& model_type);
std::vector<std::string> registered_architectures();

// The layer every supported architecture shares: norms from the checkpoint, the given blocks.
DecoderLayer standard_layer(LoadContext& lc, int64_t layer, std::unique_ptr<AttentionBlock> attn,
                            std::unique_ptr<FfnBlock> ffn);

}  // namespace mmfp4

#define MMFP4_REGISTER_ARCH(model_type, fn) \
  static const bool mmfp4_arch_registered_##fn = ::mmfp4::register_architecture(model_type, fn)
