#include "model/tracer.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "model/blocks.h"

namespace mmfp4 {

void Tracer::begin(Backend& be) {
  be.sync();
  last_ = now_seconds();
}

void Tracer::after(const ForwardContext& ctx, const char* op, Act out) {
  inspect(ctx.be, ctx.batch, ctx.layer, op, out);
}

void Tracer::after_global(Backend& be, const BatchMeta& b, const char* op, Act out) { inspect(be, b, -1, op, out); }

void Tracer::inspect(Backend& be, const BatchMeta& b, int64_t layer, const char* op, Act out) {
  be.sync();
  const double t = now_seconds();
  if (verbose_)
    log_write(LogLevel::Debug, cat(layer >= 0 ? cat("layer ", layer, " ") : std::string(), op, " -> [", out.rows, ", ",
                                   out.cols, "] ", (t - last_) * 1e3, " ms"));
  if (check_) {
    host_.resize(size_t(out.cols));
    for (int64_t r = 0; r < out.rows; ++r) {
      be.download(host_.data(), out.row(r), size_t(out.cols) * sizeof(float));
      for (int64_t c = 0; c < out.cols; ++c) {
        if (std::isfinite(host_[size_t(c)])) continue;
        // Per-head views have T * heads rows; map back to the token.
        const int64_t tok = b.n_tokens > 0 ? (r * b.n_tokens) / std::max<int64_t>(out.rows, 1) : r;
        fail("non-finite value (", host_[size_t(c)], ") after ", layer >= 0 ? cat("layer ", layer, " ") : std::string(),
             "op '", op, "' at row ", r, " column ", c, " (token ", tok, ", sequence ", b.h_seq[tok], ", position ",
             b.h_positions[tok], ")");
      }
    }
  }
  last_ = now_seconds();
}

}  // namespace mmfp4
