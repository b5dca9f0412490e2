// A read-only memory map of a whole file. Zero-copy views of checkpoint tensors point into it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mmfp4 {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws mmfp4::Error naming the path on any failure (missing, a directory, unreadable).
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Hint the kernel to read ahead (loading streams the whole file once).
  void advise_sequential() const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string. Throws naming the path.
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace mmfp4
