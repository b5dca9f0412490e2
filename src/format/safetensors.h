// safetensors files: a validated, memory-mapped reader (zero-copy views) and a streaming writer.
//
// On-disk format: u64 little-endian header length N, N bytes of JSON header
//   {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
// then the data section; offsets are relative to the start of the data section.
// The header is untrusted: every check of docs/format.md (validation) is done in open(), and each failure throws
// mmfp4::Error naming the file, the tensor and what was expected.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"
#include "core/mapped_file.h"

namespace mmfp4 {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the file mapping; valid while the file is open
  size_t nbytes = 0;
  const std::string* file = nullptr;  // path of the file holding it, for messages

  int64_t numel() const;
  std::string describe() const;  // "name (F16 [2, 3]) in path"
};

class SafetensorsFile {
 public:
  // Maps and validates the file. Throws mmfp4::Error on any problem.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return map_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data-offset order
  const TensorInfo* find(std::string_view name) const;
  const json::Value& metadata() const { return metadata_; }  // "__metadata__" object (or null)
  size_t file_size() const { return map_.size(); }

  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MB, as the reference implementation

 private:
  MappedFile map_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> by_name_;
  json::Value metadata_;
};

// Writes a safetensors file in one pass: declare every tensor first (so the header can be written), then stream
// each tensor's bytes in declaration order. Data is 8-byte aligned in the file (header padded with spaces).
// Writes to "<path>.tmp" and renames on finish(), so a crash never leaves a truncated file under the final name.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path);
  ~SafetensorsWriter();  // removes the temporary file if finish() was not reached

  void declare(const std::string& name, DType dtype, std::vector<int64_t> shape);
  void set_metadata(const std::string& key, const std::string& value);
  // After all declarations: writes the header. Then write() each tensor's bytes in declaration order (a tensor may
  // be written in several calls); finish() checks every byte was written, flushes and renames.
  void begin();
  void write(const void* data, size_t nbytes);
  void finish();

  // Convenience for small files: declare + begin + write + finish from in-memory buffers.
  struct Item {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
  };
  static void write_file(const std::string& path, const std::vector<Item>& items,
                         const std::vector<std::pair<std::string, std::string>>& metadata = {});

 private:
  std::string path_, tmp_path_;
  struct Decl {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    size_t nbytes;
  };
  std::vector<Decl> decls_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  void write_raw(const void* data, size_t nbytes);
  void* fp_ = nullptr;  // FILE*
  size_t expected_ = 0, written_ = 0;
  bool begun_ = false, finished_ = false;
};

}  // namespace mmfp4
