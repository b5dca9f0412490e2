// deepseek_v3: MLA (q LoRA optional, YaRN with mscale), dense FFN for the first first_k_dense_replace layers, then
// MoE with a sigmoid router, e_score_correction_bias, grouped top-k, routed_scaling_factor and shared experts.
#include "model/blocks.h"

namespace mmfp4 {
namespace {
DecoderLayer build_deepseek_v3(LoadContext& lc, int64_t i) {
  auto ffn = lc.cfg.is_moe_layer(i) ? make_moe(lc, i)
                                    : make_dense_mlp(lc, lc.layer_prefix(i) + "mlp.", lc.cfg.intermediate_size);
  return standard_layer(lc, i, make_mla_attention(lc, i), std::move(ffn));
}
}  // namespace
MMFP4_REGISTER_ARCH("deepseek_v3", build_deepseek_v3);
}  // namespace mmfp4
