// Limits and the clock of one rendering. The limits keep any template, hostile or buggy, from running away:
// every loop iteration, call and created element costs a step, macro recursion is bounded, and no string,
// list or output may exceed max_output_bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>

namespace mmfp4::jinja {

struct RenderOptions {
  size_t max_output_bytes = size_t(64) << 20;
  uint64_t max_steps = 20'000'000;
  int max_call_depth = 100;
  // strftime_now() formats this local time when set (tests pin the clock); otherwise it reads the local clock.
  // Only tm_year, tm_mon, tm_mday, tm_hour, tm_min and tm_sec are read.
  std::optional<std::tm> now;
};

}  // namespace mmfp4::jinja
