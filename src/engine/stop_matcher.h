// Stop strings over streamed text: text is released only when it cannot be the start of a stop string, and
// generation ends at the first occurrence (the stop string itself is not emitted), as the OpenAI API specifies.
#pragma once

#include <string>
#include <vector>

namespace mmfp4 {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops = {});
  // Appends newly decoded text. Returns the text that is now safe to emit; sets *stopped when a stop string
  // completed (everything before it has been returned, nothing after it will be).
  std::string push(const std::string& text, bool* stopped);
  // The held-back tail (no stop string completed).
  std::string flush();
  bool active() const { return !stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
};

}  // namespace mmfp4
