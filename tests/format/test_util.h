// Helpers shared by the format tests: a temporary folder, raw file writing, and safetensors bytes built by hand.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/temp_dir.h"

namespace mmfp4::test {

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// The bytes of a safetensors file: u64 little-endian `header_len` (the header's size unless overridden), the
// header text, then `data_bytes` bytes of data (value i & 0xff).
inline std::string safetensors_bytes(const std::string& header, size_t data_bytes, uint64_t header_len = UINT64_MAX) {
  if (header_len == UINT64_MAX) header_len = header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((header_len >> (8 * i)) & 0xff);
  out += header;
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(char(i & 0xff));
  return out;
}

inline std::string shared_dir() { return MMFP4_SHARED_DIR; }

// The BF16 checkpoints of ../shared and the MMFP4 twins metal-marlin's writer made of them.
struct Twin {
  const char* name;
  const char* src;  // BF16 source, relative to the shared folder
  const char* dst;  // metal-marlin's MMFP4 twin
};

inline constexpr Twin kTwins[] = {
    {"llama3", "fixtures/parity/llama3", "fixtures/parity-mmfp4/llama3"},
    {"qwen3_moe", "fixtures/parity/qwen3-moe", "fixtures/parity-mmfp4/qwen3-moe"},
    {"deepseek_v3", "fixtures/parity/deepseek-v3", "fixtures/parity-mmfp4/deepseek-v3"},
    {"glm4_moe_lite", "fixtures/parity/glm4-moe-lite", "fixtures/parity-mmfp4/glm4-moe-lite"},
    {"tiny_qwen3", "models/tiny-qwen3", "models/tiny-qwen3-mmfp4"},
    {"tiny_glm4_moe_lite", "models/tiny-glm4-moe-lite", "models/tiny-glm4-moe-lite-mmfp4-h64"},
};

}  // namespace mmfp4::test
