#pragma once
// One .safetensors file, memory-mapped and validated: every tensor's dtype, shape and byte
// range is checked against the file before anything reads it, so a corrupt file is an Error
// naming the file and the tensor, never an out-of-bounds read.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace dsi {

struct SafetensorsEntry {
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets inside the data section
  uint64_t end = 0;
  const unsigned char* data = nullptr;  // points into the map
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // maps and validates; throws Error

  const std::string& path() const { return file_.path(); }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;
  const MappedFile& file() const { return file_; }
  uint64_t data_bytes() const { return data_size_; }

 private:
  MappedFile file_;
  uint64_t data_size_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
};

// Writes tensors to a .safetensors file (used by `dsinfer logits --out` and tests).
struct SafetensorsTensorOut {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorOut>& tensors);

// A shape as error messages spell it: [2, 3].
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace dsi
