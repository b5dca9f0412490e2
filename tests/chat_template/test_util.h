// Shared helpers of the chat template tests: the data folder, the pinned clock make_expected.py uses, and
// loading the expected-output files it writes.
#pragma once

#include <ctime>
#include <string>

#include "core/json.h"
#include "core/mapped_file.h"
#include "tokenizer/chat_template.h"

namespace mmfp4::chat_test {

inline std::string data_dir() { return std::string(MMFP4_SOURCE_DIR) + "/tests/chat_template/data"; }

inline json::Value load_json(const std::string& file) {
  std::string path = data_dir() + "/" + file;
  return json::parse(read_file(path), path);
}

// make_expected.py pins strftime_now to 2025-03-07 09:05:03 (a Friday).
inline ChatRenderOptions pinned_options() {
  ChatRenderOptions o;
  std::tm t{};
  t.tm_year = 2025 - 1900;
  t.tm_mon = 2;
  t.tm_mday = 7;
  t.tm_hour = 9;
  t.tm_min = 5;
  t.tm_sec = 3;
  o.now = t;
  return o;
}

inline std::string render(const std::string& tmpl, const std::string& context_json = "{}") {
  return ChatTemplate::parse(tmpl).render(json::parse(context_json), pinned_options());
}

}  // namespace mmfp4::chat_test
