// SwiGLU MLP: x += down(silu(gate(h)) * up(h)). Gate and up read the same input: they are one weight [2I, hidden]
// (rows of gate, then of up) whenever the checkpoint stores them alike, so one product computes both.
#include "model/blocks.h"

namespace mmfp4 {

namespace {

class DenseMlp final : public FfnBlock {
 public:
  DenseMlp(LoadContext& lc, const std::string& prefix, int64_t width) : width_(width) {
    const int64_t hidden = lc.cfg.hidden_size;
    gate_up_ = lc.linear_rows({{prefix + "gate_proj.weight", width}, {prefix + "up_proj.weight", width}}, hidden);
    if (!gate_up_) {
      gate_ = lc.linear(prefix + "gate_proj.weight", width, hidden);  // [I, hidden]
      up_ = lc.linear(prefix + "up_proj.weight", width, hidden);      // [I, hidden]
    }
    down_ = lc.linear(prefix + "down_proj.weight", hidden, width);  // [hidden, I]
    bg_ = scratch.add(2 * width);                                   // [gate | up], or gate then up
  }

  void forward(ForwardContext& ctx, Act h, Act x) override {
    const int64_t T = ctx.T();
    Act gu = scratch.get(bg_, T);  // [T, 2I]
    Act g = gu.col_slice(0, width_), u = gu.col_slice(width_, width_);
    if (gate_up_) {
      ctx.be.linear(h, *gate_up_, gu, false);
    } else {
      ctx.be.linear(h, *gate_, g, false);
      ctx.be.linear(h, *up_, u, false);
    }
    ctx.be.silu_mul(g, u, g);
    ctx.after("mlp.silu(gate)*up", g);
    ctx.be.linear(g, *down_, x, /*accumulate=*/true);
    ctx.after("mlp.down+residual", x);
  }

 private:
  int64_t width_;
  std::unique_ptr<LinearWeight> gate_up_, gate_, up_, down_;
  int bg_;
};

}  // namespace

std::unique_ptr<FfnBlock> make_dense_mlp(LoadContext& lc, const std::string& prefix, int64_t width) {
  return std::make_unique<DenseMlp>(lc, prefix, width);
}

}  // namespace mmfp4
