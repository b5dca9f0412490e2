// qwen3_moe: qwen3 attention; MoE layers (softmax router over all experts, top-k, renormalised iff norm_topk_prob,
// no shared expert) where decoder_sparse_step / mlp_only_layers say, dense SwiGLU elsewhere.
#include "model/blocks.h"

namespace mmfp4 {
namespace {
DecoderLayer build_qwen3_moe(LoadContext& lc, int64_t i) {
  auto ffn = lc.cfg.is_moe_layer(i) ? make_moe(lc, i)
                                    : make_dense_mlp(lc, lc.layer_prefix(i) + "mlp.", lc.cfg.intermediate_size);
  return standard_layer(lc, i, make_gqa_attention(lc, i), std::move(ffn));
}
}  // namespace
MMFP4_REGISTER_ARCH("qwen3_moe", build_qwen3_moe);
}  // namespace mmfp4
