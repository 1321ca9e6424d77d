#include "model/tensor_dump.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "model/safetensors.h"

namespace dsi {

namespace {

std::vector<std::string> split_csv(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = std::min(text.find(',', i), text.size());
    std::string item = text.substr(i, j - i);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    i = j + 1;
  }
  return out;
}

}  // namespace

DumpOptions DumpOptions::parse(const std::string& tensors, const std::string& layers, const std::string& dir) {
  DumpOptions o;
  o.patterns = split_csv(tensors);
  o.dir = dir;
  for (const auto& item : split_csv(layers)) {
    if (item.find_first_not_of("0123456789") != std::string::npos || item.size() > 6)
      fail("--dump-layers: '{}' is not a layer index (expected comma-separated integers, e.g. 0,3)", item);
    o.layers.push_back(std::stoi(item));
  }
  if (o.enabled() && o.dir.empty()) fail("--dump-tensors needs --dump-dir DIR");
  if (!o.enabled() && (!o.layers.empty() || !o.dir.empty()))
    fail("--dump-layers and --dump-dir need --dump-tensors NAMES (e.g. q_rope,attn_out or '*')");
  return o;
}

TensorDump::TensorDump(Backend& backend, DumpOptions options) : backend_(backend), options_(std::move(options)) {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) fail("--dump-dir {}: {}", options_.dir, ec.message());
}

bool TensorDump::wants(int layer, std::string_view name) const {
  if (layer >= 0 && !options_.layers.empty() &&
      std::find(options_.layers.begin(), options_.layers.end(), layer) == options_.layers.end())
    return false;
  const std::string n(name);
  return std::any_of(options_.patterns.begin(), options_.patterns.end(),
                     [&](const std::string& p) { return fnmatch(p.c_str(), n.c_str(), 0) == 0; });
}

void TensorDump::record(int layer, std::string_view name, const Tensor& t) {
  Recorded r;
  r.name = layer >= 0 ? "layer." + std::to_string(layer) + "." + std::string(name) : std::string(name);
  r.dtype = t.dtype;
  r.shape = {t.rows, t.cols};
  r.bytes.resize(size_t(t.numel()) * dtype_size(t.dtype));
  backend_.copy_to_host(t, r.bytes.data());
  recorded_.push_back(std::move(r));
}

void TensorDump::end_step() {
  if (!recorded_.empty()) {
    std::vector<SafetensorsTensorOut> out;
    for (const auto& r : recorded_) out.push_back({r.name, r.dtype, r.shape, r.bytes.data()});
    const std::string path = options_.dir + "/step" + std::to_string(step_) + ".safetensors";
    write_safetensors(path, out);
    spdlog::info("dumped {} tensors to {}", out.size(), path);
  }
  recorded_.clear();
  ++step_;
}

}  // namespace dsi
