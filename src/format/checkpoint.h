// A model folder's weights: model.safetensors, or shards listed by model.safetensors.index.json, or (fallback) every
// *.safetensors file of the folder. Names are looked up across shards; a name in two shards is an error.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "format/safetensors.h"

namespace mmfp4 {

class Checkpoint {
 public:
  // Opens and validates every shard (FORMAT.md section 7). Throws mmfp4::Error naming the file.
  static std::unique_ptr<Checkpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const TensorInfo* find(std::string_view name) const;
  const TensorInfo& get(std::string_view name) const;  // throws "<dir>: tensor 'name' is missing"
  const std::vector<const TensorInfo*>& tensors() const { return all_; }  // every tensor, sorted by name
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const json::Value& index_metadata() const { return index_metadata_; }  // index "metadata" or null
  size_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string_view, const TensorInfo*> by_name_;
  std::vector<const TensorInfo*> all_;
  json::Value index_metadata_;
};

}  // namespace mmfp4
