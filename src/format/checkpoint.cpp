#include "format/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "format/json_keys.h"

namespace mmfp4 {

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// A weight_map value must name a file directly inside the folder: no separators, no "." or "..", nothing absolute,
// no NUL, so that an index can never make us read outside the model folder.
bool plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

// The shard files of an index folder, in order of first mention, with the tensors the index places in each.
struct IndexPlan {
  std::vector<std::string> files;
  std::map<std::string, std::vector<std::string>> tensors_of;  // file -> names the index puts there
  json::Value metadata;
};

IndexPlan read_index(const std::string& dir) {
  const std::string path = join(dir, kIndexName);
  const std::string text = read_file(path);
  json::Value root;
  try {
    root = json::parse(text, kIndexName);
  } catch (const Error& e) {
    fail(path, ": index is not valid JSON: ", e.what());
  }
  if (!root.is_object()) fail(path, ": index is a JSON ", json::Value::type_name(root.type()), ", expected an object");
  const json::Value* wm = root.find("weight_map");
  if (!wm || !wm->is_object()) fail(path, ": index has no 'weight_map' object");
  if (auto dup = find_duplicate_key(text, "weight_map"))
    fail(path, ": weight_map lists tensor '", *dup, "' twice");
  IndexPlan plan;
  if (const json::Value* md = root.find("metadata"); md && !md->is_null()) {
    if (!md->is_object()) fail(path, ": index 'metadata' is a JSON ", json::Value::type_name(md->type()),
                               ", expected an object");
    plan.metadata = *md;
  }
  for (const auto& [tensor, file] : wm->as_object()) {
    if (!file.is_string())
      fail(path, ": weight_map['", tensor, "'] is a JSON ", json::Value::type_name(file.type()),
           ", expected a file name");
    const std::string& f = file.as_string();
    if (!plain_file_name(f))
      fail(path, ": weight_map['", tensor, "'] = '", f,
           "' is not a plain file name inside the model folder (no '/', '..' or absolute paths)");
    auto [it, added] = plan.tensors_of.try_emplace(f);
    if (added) plan.files.push_back(f);
    it->second.push_back(tensor);
  }
  if (plan.files.empty()) fail(path, ": weight_map is empty");
  for (const std::string& f : plan.files)
    if (!file_exists(join(dir, f)))
      fail(path, ": shard '", f, "' (listed for tensor '", plan.tensors_of[f].front(), "') does not exist in ", dir);
  return plan;
}

// Without an index: model.safetensors, else every *.safetensors of the folder in name order.
std::vector<std::string> unindexed_files(const std::string& dir) {
  if (file_exists(join(dir, "model.safetensors"))) return {"model.safetensors"};
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 12 && name.ends_with(".safetensors") && e.is_regular_file()) out.push_back(name);
  }
  if (ec) fail(dir, ": cannot list the folder: ", ec.message());
  std::sort(out.begin(), out.end());
  if (out.empty()) fail(dir, ": no model.safetensors, ", kIndexName, " or *.safetensors file in the folder");
  return out;
}

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir) {
  if (!is_directory(dir)) fail(dir, ": not a directory (expected a model folder)");
  auto ck = std::make_unique<Checkpoint>();
  ck->dir_ = dir;

  IndexPlan plan;
  const bool indexed = file_exists(join(dir, kIndexName));
  if (indexed) {
    plan = read_index(dir);
    ck->index_metadata_ = plan.metadata;
  } else {
    plan.files = unindexed_files(dir);
  }

  for (const std::string& name : plan.files) {
    ck->files_.push_back(SafetensorsFile::open(join(dir, name)));
    const SafetensorsFile& f = *ck->files_.back();
    if (indexed)
      for (const std::string& t : plan.tensors_of[name])
        if (!f.find(t))
          fail(join(dir, kIndexName), ": the index places tensor '", t, "' in '", name, "', but ", f.path(),
               " has no such tensor");
    for (const TensorInfo& t : f.tensors()) {
      auto [it, added] = ck->by_name_.emplace(t.name, &t);
      if (!added) fail(dir, ": tensor '", t.name, "' is in both ", *it->second->file, " and ", f.path());
    }
  }
  for (const auto& [name, t] : ck->by_name_) ck->all_.push_back(t);
  std::sort(ck->all_.begin(), ck->all_.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
  return ck;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) fail(dir_, ": tensor '", name, "' is missing");
  return *t;
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& f : files_) n += f->file_size();
  return n;
}

}  // namespace mmfp4
