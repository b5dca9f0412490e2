// llama: GQA with rotate-half RoPE (default / linear / llama3 / yarn scaling), SwiGLU MLP.
#include "model/blocks.h"

namespace mmfp4 {
namespace {
DecoderLayer build_llama(LoadContext& lc, int64_t i) {
  return standard_layer(lc, i, make_gqa_attention(lc, i),
                        make_dense_mlp(lc, lc.layer_prefix(i) + "mlp.", lc.cfg.intermediate_size));
}
}  // namespace
MMFP4_REGISTER_ARCH("llama", build_llama);
}  // namespace mmfp4
