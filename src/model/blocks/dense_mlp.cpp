// SwiGLU MLP: x += down(silu(gate(h)) * up(h)).
#include "model/blocks.h"

namespace mmfp4 {

namespace {

class DenseMlp final : public FfnBlock {
 public:
  DenseMlp(LoadContext& lc, const std::string& prefix, int64_t width) : width_(width) {
    const int64_t hidden = lc.cfg.hidden_size;
    gate_ = lc.linear(prefix + "gate_proj.weight", width, hidden);  // [I, hidden]
    up_ = lc.linear(prefix + "up_proj.weight", width, hidden);      // [I, hidden]
    down_ = lc.linear(prefix + "down_proj.weight", hidden, width);  // [hidden, I]
    bg_ = scratch.add(width);
    bu_ = scratch.add(width);
  }

  void forward(ForwardContext& ctx, Act h, Act x) override {
    const int64_t T = ctx.T();
    Act g = scratch.get(bg_, T), u = scratch.get(bu_, T);
    ctx.be.linear(h, *gate_, g, false);
    ctx.be.linear(h, *up_, u, false);
    ctx.be.silu_mul(g, u, g);
    ctx.after("mlp.silu(gate)*up", g);
    ctx.be.linear(g, *down_, x, /*accumulate=*/true);
    ctx.after("mlp.down+residual", x);
  }

 private:
  int64_t width_;
  std::unique_ptr<LinearWeight> gate_, up_, down_;
  int bg_, bu_;
};

}  // namespace

std::unique_ptr<FfnBlock> make_dense_mlp(LoadContext& lc, const std::string& prefix, int64_t width) {
  return std::make_unique<DenseMlp>(lc, prefix, width);
}

}  // namespace mmfp4
