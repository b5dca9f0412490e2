// qwen3: llama's layer plus per-head RMSNorm on q and k before RoPE (ModelConfig::qk_norm, read by the GQA block).
#include "model/blocks.h"

namespace mmfp4 {
namespace {
DecoderLayer build_qwen3(LoadContext& lc, int64_t i) {
  return standard_layer(lc, i, make_gqa_attention(lc, i),
                        make_dense_mlp(lc, lc.layer_prefix(i) + "mlp.", lc.cfg.intermediate_size));
}
}  // namespace
MMFP4_REGISTER_ARCH("qwen3", build_qwen3);
}  // namespace mmfp4
