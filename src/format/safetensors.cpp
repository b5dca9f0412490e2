#include "format/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "core/error.h"
#include "format/json_keys.h"

namespace mmfp4 {

// ---------------------------------------------------------------------------------------------------------------
// TensorInfo
// ---------------------------------------------------------------------------------------------------------------
int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at open: the byte size did not overflow, so neither does this
  return n;
}

std::string TensorInfo::describe() const {
  return cat("'", name, "' (", dtype_name(dtype), " ", shape_str(shape), ") in ", file ? *file : std::string("?"));
}

// ---------------------------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------------------------
namespace {

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A non-negative JSON integer (the parser turns integers beyond int64 into doubles, which as_int refuses).
bool non_negative_int(const json::Value& v, uint64_t& out) {
  if (!v.is_int() || v.as_int() < 0) return false;
  out = uint64_t(v.as_int());
  return true;
}

// Parses one header entry into `t` (name already set), checking it against the data section of `data_size` bytes.
void parse_entry(const std::string& path, const json::Value& e, uint64_t data_size, TensorInfo& t, uint64_t& begin,
                 uint64_t& end) {
  const std::string where = cat(path, ": tensor '", t.name, "'");
  if (!e.is_object())
    fail(where, ": header entry is a JSON ", json::Value::type_name(e.type()),
         ", expected an object with dtype, shape and data_offsets");

  const json::Value* dt = e.find("dtype");
  if (!dt) fail(where, ": header entry has no 'dtype'");
  if (!dt->is_string()) fail(where, ": 'dtype' is a JSON ", json::Value::type_name(dt->type()), ", expected a string");
  auto dtype = dtype_from_name(dt->as_string());
  if (!dtype) fail(where, ": unknown dtype '", dt->as_string(), "'");
  t.dtype = *dtype;

  const json::Value* sh = e.find("shape");
  if (!sh) fail(where, ": header entry has no 'shape'");
  if (!sh->is_array()) fail(where, ": 'shape' is a JSON ", json::Value::type_name(sh->type()), ", expected an array");
  for (const json::Value& d : sh->as_array()) {
    if (!d.is_int()) fail(where, ": 'shape' holds a JSON ", json::Value::type_name(d.type()), ", expected integers");
    t.shape.push_back(d.as_int());
  }
  uint64_t bytes = dtype_size(t.dtype);
  for (int64_t d : t.shape) {
    if (d < 0) fail(where, ": negative dimension ", d, " in shape ", shape_str(t.shape));
    if (__builtin_mul_overflow(bytes, uint64_t(d), &bytes))
      fail(where, ": shape ", shape_str(t.shape), " overflows: its byte size does not fit in 64 bits");
  }

  const json::Value* off = e.find("data_offsets");
  if (!off) fail(where, ": header entry has no 'data_offsets'");
  if (!off->is_array() || off->size() != 2 || !non_negative_int((*off)[0], begin) ||
      !non_negative_int((*off)[1], end))
    fail(where, ": 'data_offsets' must be [begin, end], two non-negative integers");
  if (end < begin) fail(where, ": data_offsets [", begin, ", ", end, "] end before they begin");
  if (end - begin != bytes)
    fail(where, ": shape ", shape_str(t.shape), " of ", dtype_name(t.dtype), " needs ", bytes,
         " bytes but data_offsets [", begin, ", ", end, "] span ", end - begin);
  if (end > data_size)
    fail(where, ": data_offsets [", begin, ", ", end, "] run past the end of the data section (", data_size,
         " bytes)");
  t.nbytes = size_t(bytes);
}

void check_metadata(const std::string& path, const json::Value& m) {
  if (!m.is_object())
    fail(path, ": __metadata__ is a JSON ", json::Value::type_name(m.type()), ", expected an object of strings");
  for (const auto& [k, v] : m.as_object())
    if (!v.is_string())
      fail(path, ": __metadata__ must map strings to strings, but '", k, "' is a JSON ",
           json::Value::type_name(v.type()));
}

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::make_unique<SafetensorsFile>();
  f->map_ = MappedFile(path);
  const uint8_t* base = f->map_.data();
  const uint64_t size = f->map_.size();
  if (size < 8)
    fail(path, ": file is ", size, " bytes, too short for a safetensors file (it starts with an 8-byte header length)");
  const uint64_t n = read_le64(base);
  if (n > kMaxHeaderBytes)
    fail(path, ": header length ", n, " exceeds the limit of ", kMaxHeaderBytes,
         " bytes (corrupt, or not a safetensors file)");
  if (n > size - 8) fail(path, ": header length ", n, " runs past the end of the file (", size, " bytes)");
  if (n < 2) fail(path, ": header length ", n, " is too small for a JSON object");

  std::string_view text(reinterpret_cast<const char*>(base + 8), size_t(n));
  json::Value root;
  try {
    root = json::parse(text, "header");
  } catch (const Error& e) {
    fail(path, ": header is not valid JSON: ", e.what());
  }
  if (!root.is_object())
    fail(path, ": header is a JSON ", json::Value::type_name(root.type()), ", expected an object");
  if (auto dup = find_duplicate_key(text)) fail(path, ": tensor name '", *dup, "' appears twice in the header");

  const uint64_t data_size = size - 8 - n;
  const uint8_t* data = base + 8 + n;
  struct Range {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : root.as_object()) {
    if (name == "__metadata__") {
      check_metadata(path, entry);
      f->metadata_ = entry;
      continue;
    }
    TensorInfo t;
    t.name = name;
    uint64_t b = 0, e = 0;
    parse_entry(path, entry, data_size, t, b, e);
    t.data = data + b;
    ranges.push_back({b, e, f->tensors_.size()});
    f->tensors_.push_back(std::move(t));
  }

  // Ranges may leave gaps but must not overlap (empty tensors overlap nothing).
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin == r.end) continue;
    if (prev && r.begin < prev->end) {
      const TensorInfo& a = f->tensors_[prev->index];
      const TensorInfo& b = f->tensors_[r.index];
      fail(path, ": tensors '", a.name, "' [", prev->begin, ", ", prev->end, ") and '", b.name, "' [", r.begin, ", ",
           r.end, ") overlap in the data section");
    }
    if (!prev || r.end > prev->end) prev = &r;
  }

  // Data-offset order; the index is built last, once no string moves any more.
  std::vector<TensorInfo> sorted;
  sorted.reserve(ranges.size());
  for (const Range& r : ranges) sorted.push_back(std::move(f->tensors_[r.index]));
  f->tensors_ = std::move(sorted);
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    f->tensors_[i].file = &f->map_.path();
    f->by_name_.emplace(f->tensors_[i].name, i);
  }
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------------------------
SafetensorsWriter::SafetensorsWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {}

SafetensorsWriter::~SafetensorsWriter() {
  if (fp_) std::fclose(static_cast<FILE*>(fp_));
  if (begun_ && !finished_) std::remove(tmp_path_.c_str());
}

void SafetensorsWriter::declare(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  MMFP4_ASSERT(!begun_);
  if (name == "__metadata__") fail(path_, ": '__metadata__' cannot be a tensor name");
  for (const Decl& d : decls_)
    if (d.name == name) fail(path_, ": tensor '", name, "' declared twice");
  uint64_t bytes = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) fail(path_, ": tensor '", name, "': negative dimension in shape ", shape_str(shape));
    if (__builtin_mul_overflow(bytes, uint64_t(d), &bytes))
      fail(path_, ": tensor '", name, "': shape ", shape_str(shape), " is too large");
  }
  decls_.push_back({name, dtype, std::move(shape), size_t(bytes)});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  MMFP4_ASSERT(!begun_);
  for (auto& kv : metadata_)
    if (kv.first == key) {
      kv.second = value;
      return;
    }
  metadata_.emplace_back(key, value);
}

void SafetensorsWriter::begin() {
  MMFP4_ASSERT(!begun_);
  // Header: tensors in declaration order with contiguous ranges, as the reference implementation requires (it
  // rejects gaps), so files we write load everywhere.
  json::Value header = json::Value::object();
  if (!metadata_.empty()) {
    json::Value m = json::Value::object();
    for (const auto& [k, v] : metadata_) m.set(k, v);
    header.set("__metadata__", std::move(m));
  }
  size_t offset = 0;
  for (const Decl& d : decls_) {
    json::Value e = json::Value::object();
    e.set("dtype", std::string(dtype_name(d.dtype)));
    json::Value shape = json::Value::array();
    for (int64_t x : d.shape) shape.push_back(x);
    e.set("shape", std::move(shape));
    json::Value off = json::Value::array();
    off.push_back(uint64_t(offset));
    off.push_back(uint64_t(offset + d.nbytes));
    e.set("data_offsets", std::move(off));
    header.as_object().append_unchecked(d.name, std::move(e));
    offset += d.nbytes;
  }
  expected_ = offset;
  std::string text = json::dump(header);
  // Pad with spaces so the data section starts 8-byte aligned in the file (and so in a page-aligned mapping).
  while ((8 + text.size()) % 8) text.push_back(' ');

  FILE* fp = std::fopen(tmp_path_.c_str(), "wb");
  if (!fp) fail(tmp_path_, ": cannot create: ", std::strerror(errno));
  fp_ = fp;
  begun_ = true;
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
  write_raw(len, 8);
  write_raw(text.data(), text.size());
}

void SafetensorsWriter::write_raw(const void* data, size_t nbytes) {
  if (nbytes && std::fwrite(data, 1, nbytes, static_cast<FILE*>(fp_)) != nbytes)
    fail(tmp_path_, ": write failed: ", std::strerror(errno));
}

void SafetensorsWriter::write(const void* data, size_t nbytes) {
  MMFP4_ASSERT(begun_ && !finished_);
  MMFP4_ASSERT(written_ + nbytes <= expected_);
  write_raw(data, nbytes);
  written_ += nbytes;
}

void SafetensorsWriter::finish() {
  MMFP4_ASSERT(begun_ && !finished_);
  MMFP4_ASSERT(written_ == expected_);
  FILE* fp = static_cast<FILE*>(fp_);
  fp_ = nullptr;
  if (std::fflush(fp) != 0) {
    int e = errno;
    std::fclose(fp);
    fail(tmp_path_, ": write failed: ", std::strerror(e));
  }
  if (std::fclose(fp) != 0) fail(tmp_path_, ": close failed: ", std::strerror(errno));
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    fail(path_, ": cannot rename from ", tmp_path_, ": ", std::strerror(errno));
  finished_ = true;
}

void SafetensorsWriter::write_file(const std::string& path, const std::vector<Item>& items,
                                   const std::vector<std::pair<std::string, std::string>>& metadata) {
  // Wider element types first (stable), so that every tensor starts at a multiple of its element size.
  std::vector<const Item*> order;
  for (const Item& it : items) order.push_back(&it);
  std::stable_sort(order.begin(), order.end(),
                   [](const Item* a, const Item* b) { return dtype_size(a->dtype) > dtype_size(b->dtype); });
  SafetensorsWriter w(path);
  for (const Item* it : order) w.declare(it->name, it->dtype, it->shape);
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  w.begin();
  for (size_t i = 0; i < order.size(); ++i) w.write(order[i]->data, w.decls_[i].nbytes);
  w.finish();
}

}  // namespace mmfp4
