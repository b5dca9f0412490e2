// Writing model folders (shared by `mmfp4 quantize` and `mmfp4 dequantize`): preparing the destination, copying the
// files that are not weights, writing an index, and the per-shard writing order.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"

namespace mmfp4 {

// Creates `dst` (and its parents). Refuses a destination that is the source, a file, or a non-empty folder unless
// `force`; with `force`, removes the weight files a previous run may have left (*.safetensors, the index,
// quantization_config.json) so no stale shard survives.
void prepare_output_folder(const std::string& src, const std::string& dst, bool force);

// Copies every regular file of `src` that is not a weight file (*.safetensors, the index) and not named in `skip`
// to `dst`, unchanged: config.json, tokenizer files, generation_config.json, chat_template.jinja, ... Sub-folders
// are left out. Returns the names copied.
std::vector<std::string> copy_side_files(const std::string& src, const std::string& dst,
                                         const std::vector<std::string>& skip = {});

// Writes dst/model.safetensors.index.json: {"metadata": metadata, "weight_map": {tensor: file}} (weight_map sorted
// by tensor name), through a temporary file and a rename.
void write_index(const std::string& dst, const json::Value& metadata,
                 std::vector<std::pair<std::string, std::string>> weight_map);

// Writes a small text file through a temporary file and a rename.
void write_text_file(const std::string& path, const std::string& text);

// Order of tensors in a file we write: wider element types first, then by name (as the reference safetensors
// writer orders them), so each tensor starts at a multiple of its element size. Returns a permutation of [0, n).
std::vector<size_t> writing_order(const std::vector<std::pair<std::string, DType>>& tensors);

}  // namespace mmfp4
