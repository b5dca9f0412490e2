#include "format/model_folder.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/mapped_file.h"

namespace fs = std::filesystem;

namespace mmfp4 {

namespace {

bool is_weight_file(const std::string& name) {
  return name.ends_with(".safetensors") || name.ends_with(".safetensors.tmp") ||
         name == "model.safetensors.index.json";
}

}  // namespace

void prepare_output_folder(const std::string& src, const std::string& dst, bool force) {
  std::error_code ec;
  if (fs::exists(dst, ec) && fs::exists(src, ec) && fs::equivalent(src, dst, ec))
    fail(dst, ": the destination is the source folder");
  if (fs::exists(dst, ec) && !fs::is_directory(dst, ec)) fail(dst, ": exists and is not a folder");
  if (fs::is_directory(dst, ec) && !fs::is_empty(dst, ec)) {
    if (!force) fail(dst, ": the destination folder is not empty (pass --force to write into it)");
    for (const auto& e : fs::directory_iterator(dst, ec)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && (is_weight_file(name) || name == "quantization_config.json")) fs::remove(e.path(), ec);
    }
  }
  fs::create_directories(dst, ec);
  if (ec) fail(dst, ": cannot create the folder: ", ec.message());
}

std::vector<std::string> copy_side_files(const std::string& src, const std::string& dst,
                                         const std::vector<std::string>& skip) {
  std::vector<std::string> copied;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(src, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || is_weight_file(name) || std::find(skip.begin(), skip.end(), name) != skip.end())
      continue;
    fs::copy_file(e.path(), fs::path(dst) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) fail(e.path().string(), ": cannot copy to ", dst, ": ", ec.message());
    copied.push_back(name);
  }
  if (ec) fail(src, ": cannot list the folder: ", ec.message());
  std::sort(copied.begin(), copied.end());
  return copied;
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) fail(tmp, ": write failed: ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(path, ": cannot rename from ", tmp, ": ", std::strerror(errno));
}

void write_index(const std::string& dst, const json::Value& metadata,
                 std::vector<std::pair<std::string, std::string>> weight_map) {
  std::sort(weight_map.begin(), weight_map.end());
  json::Value wm = json::Value::object();
  for (auto& [tensor, file] : weight_map) wm.as_object().append_unchecked(tensor, file);
  json::Value root = json::Value::object();
  root.set("metadata", metadata);
  root.set("weight_map", std::move(wm));
  write_text_file(dst + "/model.safetensors.index.json", json::dump_python(root, false, 2) + "\n");
}

std::vector<size_t> writing_order(const std::vector<std::pair<std::string, DType>>& tensors) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t sa = dtype_size(tensors[a].second), sb = dtype_size(tensors[b].second);
    return sa != sb ? sa > sb : tensors[a].first < tensors[b].first;
  });
  return order;
}

}  // namespace mmfp4
