#include "model/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "core/progress.h"

namespace dsi {

namespace fs = std::filesystem;

namespace {

// Shard file names in the order to open them, and which tensor each index entry expects where.
struct ShardList {
  std::vector<std::string> files;
  std::map<std::string, std::string> expected_file;  // tensor -> shard (from the index)
};

ShardList list_shards(const std::string& dir) {
  ShardList list;
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    std::string what = index.string();
    Json j = parse_json(read_text_file(what), what);
    auto wm = j.find("weight_map");
    if (!j.is_object() || wm == j.end() || !wm->is_object()) fail("{}: missing object 'weight_map'", what);
    for (auto& [name, file] : wm->items()) {
      if (!file.is_string()) fail("{}: weight_map[\"{}\"] is not a file name", what, name);
      auto f = file.get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        fail("{}: weight_map[\"{}\"] = \"{}\" is not a file name in the checkpoint folder", what, name, f);
      list.expected_file[name] = f;
      if (std::find(list.files.begin(), list.files.end(), f) == list.files.end()) list.files.push_back(f);
    }
    std::sort(list.files.begin(), list.files.end());
    return list;
  }
  if (!fs::is_directory(dir)) fail("model folder {} does not exist", dir);
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" && e.path().filename() != "reference.safetensors")
      list.files.push_back(e.path().filename().string());
  std::sort(list.files.begin(), list.files.end());
  if (list.files.empty()) fail("{}: no model.safetensors.index.json and no *.safetensors files", dir);
  return list;
}

}  // namespace

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  ShardList shards = list_shards(dir);
  uint64_t total = 0;
  for (auto& f : shards.files) {
    std::error_code ec;
    auto size = fs::file_size(fs::path(dir) / f, ec);
    if (ec) fail("{}: shard {} listed in model.safetensors.index.json is missing", dir, f);
    total += size;
  }
  Progress progress("loading " + dir, int64_t(total >> 20), "MiB");
  for (auto& f : shards.files) {
    auto file = std::make_unique<SafetensorsFile>((fs::path(dir) / f).string());
    // Ask the kernel to start reading the shard now, so the first forward pass does not
    // fault every page in one by one.
    file->file().prefetch(0, file->file().bytes().size());
    for (auto& [name, entry] : file->entries()) {
      auto [it, inserted] = tensors_.emplace(name, CheckpointTensor{&entry, file.get()});
      if (!inserted) fail("{}: tensor {} is in both {} and {}", dir, name, it->second.file->path(), file->path());
    }
    progress.advance(int64_t(file->file().bytes().size() >> 20));
    files_.push_back(std::move(file));
  }
  progress.finish();
  for (auto& [name, file] : shards.expected_file) {
    auto it = tensors_.find(name);
    if (it == tensors_.end())
      fail("{}: tensor {} is listed in model.safetensors.index.json under {} but no shard holds it", dir, name,
           file);
    if (fs::path(it->second.file->path()).filename() != file)
      fail("{}: tensor {} is listed under {} but found in {}", dir, name, file, it->second.file->path());
  }
  spdlog::info("opened {}: {} shards, {} tensors, {:.2f} GiB in {:.2f} s", dir, files_.size(), tensors_.size(),
               double(total) / double(1ull << 30), progress.elapsed_seconds());
}

const CheckpointTensor* Checkpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (auto& f : files_) n += f->file().bytes().size();
  return n;
}

}  // namespace dsi
