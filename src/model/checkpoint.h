#pragma once
// A Hugging Face checkpoint folder: config.json plus one or more .safetensors shards, listed
// by model.safetensors.index.json when sharded. Tensors stay in the memory maps.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/safetensors.h"

namespace dsi {

struct CheckpointTensor {
  const SafetensorsEntry* entry;
  const SafetensorsFile* file;
};

class Checkpoint {
 public:
  // Opens and validates every shard of `dir` (progress is shown for many shards).
  explicit Checkpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const CheckpointTensor* find(const std::string& name) const;
  const std::unordered_map<std::string, CheckpointTensor>& tensors() const { return tensors_; }
  size_t n_files() const { return files_.size(); }
  uint64_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, CheckpointTensor> tensors_;
};

}  // namespace dsi
