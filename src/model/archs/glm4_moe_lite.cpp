// glm4_moe_lite (GLM-4.7-Flash): MLA with q LoRA and interleaved RoPE; layer 0 dense, then MoE with a sigmoid
// router + correction bias, top-4 of 64 experts (n_group = topk_group = 1), scaling, one shared expert. Layers past
// num_hidden_layers (the MTP layer stored as model.layers.47) are not loaded.
#include "model/blocks.h"

namespace mmfp4 {
namespace {
DecoderLayer build_glm4_moe_lite(LoadContext& lc, int64_t i) {
  auto ffn = lc.cfg.is_moe_layer(i) ? make_moe(lc, i)
                                    : make_dense_mlp(lc, lc.layer_prefix(i) + "mlp.", lc.cfg.intermediate_size);
  return standard_layer(lc, i, make_mla_attention(lc, i), std::move(ffn));
}
}  // namespace
MMFP4_REGISTER_ARCH("glm4_moe_lite", build_glm4_moe_lite);
}  // namespace mmfp4
