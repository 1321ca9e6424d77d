#pragma once
// A read-only memory map of a whole file. Checkpoint tensors are used in place from the map,
// so loading copies nothing and the page cache is shared between processes.
#include <cstddef>
#include <span>
#include <string>

namespace dsi {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const unsigned char> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Asks the kernel to read the given range ahead (MADV_WILLNEED); a hint, never an error.
  void prefetch(size_t offset, size_t length) const;

 private:
  std::string path_;
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_text_file(const std::string& path);  // throws Error naming the path

}  // namespace dsi
