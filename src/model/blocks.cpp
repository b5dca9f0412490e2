#include "model/blocks.h"

#include <cstdlib>
#include <cstring>
#include <map>

#include "core/env.h"
#include "core/error.h"
#include "model/tracer.h"

namespace mmfp4 {

int64_t Scratch::total_width() const {
  int64_t s = 0;
  for (int64_t w : widths_) s += w;
  return s;
}

void Scratch::bind(float* base, int64_t max_tokens) {
  ptrs_.clear();
  float* p = base;
  for (int64_t w : widths_) {
    ptrs_.push_back(p);
    p += w * max_tokens;
  }
}

std::unique_ptr<LinearWeight> LoadContext::linear(const std::string& name, int64_t n, int64_t k) {
  HostWeight hw = load_weight(ck, name, n, k, qc);
  auto w = be.upload_linear(hw);
  weight_bytes += w->bytes;
  return w;
}

std::unique_ptr<LinearWeight> LoadContext::linear_rows(const std::vector<std::pair<std::string, int64_t>>& parts,
                                                       int64_t k) {
  if (!fuse()) return nullptr;
  std::vector<HostWeight> hws;
  std::vector<const HostWeight*> ptrs;
  std::string name;
  for (const auto& [n_, rows] : parts) {
    hws.push_back(load_weight(ck, n_, rows, k, qc));
    name += (name.empty() ? "" : " + ") + n_;
  }
  for (const HostWeight& h : hws) ptrs.push_back(&h);
  HostWeight all;
  if (!stack_rows(ptrs, name, &all)) return nullptr;
  auto w = be.upload_linear(all);
  weight_bytes += w->bytes;
  return w;
}

// MMFP4_FUSE_LINEARS=0 keeps every weight as the checkpoint has it (A/B measurement of the load-time fusions).
bool LoadContext::fuse() const {
  static const bool on = env_bool("MMFP4_FUSE_LINEARS").value_or(true);
  return on;
}

DeviceVector LoadContext::vector(const std::string& name, int64_t n) {
  DeviceVector v = be.upload_vector(load_vector(ck, name, n), name);
  owned.push_back(v.data);
  weight_bytes += n * 4;
  return v;
}

void ForwardContext::after(const char* op, Act out) const {
  if (tracer) tracer->after(*this, op, out);
}

namespace {
std::map<std::string, LayerBuilder>& arch_registry() {
  static std::map<std::string, LayerBuilder> r;
  return r;
}
}  // namespace

bool register_architecture(const char* model_type, LayerBuilder build) {
  arch_registry()[model_type] = build;
  return true;
}

LayerBuilder find_architecture(const std::string& model_type) {
  auto it = arch_registry().find(model_type);
  return it == arch_registry().end() ? nullptr : it->second;
}

std::vector<std::string> registered_architectures() {
  std::vector<std::string> out;
  for (const auto& [k, v] : arch_registry()) out.push_back(k);
  return out;
}

DecoderLayer standard_layer(LoadContext& lc, int64_t layer, std::unique_ptr<AttentionBlock> attn,
                            std::unique_ptr<FfnBlock> ffn) {
  DecoderLayer l;
  const std::string p = lc.layer_prefix(layer);
  l.input_norm = lc.vector(p + "input_layernorm.weight", lc.cfg.hidden_size);
  l.post_attention_norm = lc.vector(p + "post_attention_layernorm.weight", lc.cfg.hidden_size);
  l.attn = std::move(attn);
  l.ffn = std::move(ffn);
  return l;
}

}  // namespace mmfp4
