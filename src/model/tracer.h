// Debugging built in (docs/architecture.md): with --check / MMFP4_CHECK=1 every op's output is checked for
// NaN/Inf and the forward stops at the first bad value naming layer, op, token position and sequence; with
// --verbose / MMFP4_LOG=debug every op is logged with its output shape and time.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"

namespace mmfp4 {

struct ForwardContext;

class Tracer {
 public:
  Tracer(bool check, bool verbose) : check_(check), verbose_(verbose) {}
  bool enabled() const { return check_ || verbose_; }
  void begin(Backend& be);
  // Throws mmfp4::Error on a non-finite value when checking.
  void after(const ForwardContext& ctx, const char* op, Act out);
  void after_global(Backend& be, const BatchMeta& b, const char* op, Act out);

 private:
  void inspect(Backend& be, const BatchMeta& b, int64_t layer, const char* op, Act out);
  bool check_, verbose_;
  double last_ = 0;
  std::vector<float> host_;
};

}  // namespace mmfp4
