#include "plan/gpu_table.h"

#include <algorithm>
#include <cctype>

#include "plan/assets.h"

namespace dsi::plan {

std::string_view link_type_name(LinkType t) { return t == LinkType::nvlink ? "nvlink" : "pcie"; }

uint64_t GpuSpec::memory_bytes() const { return uint64_t(memory_gib * double(1ull << 30)); }

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

double positive_number(const Json& g, const std::string& key, std::string_view what) {
  double v = json_get<double>(g, key, what);
  if (!(v > 0)) fail("{}: {} = {} must be positive", what, key, v);
  return v;
}

GpuSpec parse_gpu(const Json& g, std::string_view table) {
  GpuSpec s;
  s.name = json_get<std::string>(g, "name", table);
  std::string what = std::string(table) + " gpu " + s.name;
  if (auto it = g.find("aliases"); it != g.end()) {
    if (!it->is_array()) fail("{}: aliases must be a list of strings", what);
    for (const Json& a : *it) {
      if (!a.is_string()) fail("{}: aliases must be a list of strings", what);
      s.aliases.push_back(a.get<std::string>());
    }
  }
  s.arch = json_get<std::string>(g, "arch", what);
  s.memory_gib = positive_number(g, "memory_gib", what);
  s.hbm_gbs = positive_number(g, "hbm_gbs", what);
  s.bf16_tflops = positive_number(g, "bf16_tflops", what);
  s.fp8_tflops = json_get<double>(g, "fp8_tflops", what);
  if (s.fp8_tflops < 0) fail("{}: fp8_tflops = {} must not be negative", what, s.fp8_tflops);
  s.bf16 = json_get<bool>(g, "bf16", what);
  std::string link = json_get<std::string>(g, "link", what);
  if (link == "nvlink") s.link = LinkType::nvlink;
  else if (link == "pcie") s.link = LinkType::pcie;
  else fail("{}: link = \"{}\" must be nvlink or pcie", what, link);
  s.link_gbs = positive_number(g, "link_gbs", what);
  s.source = json_get<std::string>(g, "source", what);
  return s;
}

}  // namespace

GpuTable GpuTable::from_json(const Json& j, std::string_view what) {
  if (!j.is_object()) fail("{}: expected a JSON object", what);
  auto it = j.find("gpus");
  if (it == j.end() || !it->is_array()) fail("{}: missing list 'gpus'", what);
  GpuTable t;
  for (const Json& g : *it) {
    if (!g.is_object()) fail("{}: every entry of 'gpus' must be an object", what);
    GpuSpec s = parse_gpu(g, what);
    for (const std::string& n : [&] {
           std::vector<std::string> all{s.name};
           all.insert(all.end(), s.aliases.begin(), s.aliases.end());
           return all;
         }())
      if (t.find(n)) fail("{}: GPU name or alias '{}' appears twice", what, n);
    t.gpus_.push_back(std::move(s));
  }
  return t;
}

const GpuTable& GpuTable::builtin() {
  static const GpuTable table = from_json(parse_json(asset_gpus_json(), "assets/gpus.json"), "assets/gpus.json");
  return table;
}

const GpuSpec* GpuTable::find(std::string_view name) const {
  for (const GpuSpec& g : gpus_) {
    if (iequal(g.name, name)) return &g;
    for (const std::string& a : g.aliases)
      if (iequal(a, name)) return &g;
  }
  return nullptr;
}

}  // namespace dsi::plan
