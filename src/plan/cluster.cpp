#include "plan/cluster.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace dsi::plan {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string known_names(const GpuTable& table) {
  std::string s;
  for (const GpuSpec& g : table.gpus()) s += (s.empty() ? "" : ", ") + g.name;
  return s;
}

// "96GB" / "96gb" / "40.5GB": a GPU the table does not know, of that much memory.
bool parse_memory_only(std::string_view name, GpuSpec& out) {
  if (name.size() < 3) return false;
  std::string_view unit = name.substr(name.size() - 2);
  if (!(std::tolower(static_cast<unsigned char>(unit[0])) == 'g' &&
        std::tolower(static_cast<unsigned char>(unit[1])) == 'b'))
    return false;
  std::string_view num = name.substr(0, name.size() - 2);
  double gib = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), gib);
  if (ec != std::errc() || p != num.data() + num.size()) return false;
  if (!(gib > 0 && gib <= 4096)) fail("--gpus: memory {} must be between 0 and 4096 GB", name);
  out = GpuSpec{};
  out.name = std::string(name);
  out.arch = "custom";
  out.memory_gib = gib;
  out.link = LinkType::pcie;  // unknown: assume the slow case
  out.link_gbs = 64;
  out.source = "--gpus COUNTxMEMGB: memory only; PCIe Gen4 assumed, no bandwidth or FLOPS figures";
  return true;
}

GpuGroup parse_group(std::string_view part, const GpuTable& table) {
  size_t x = part.find_first_of("xX");
  if (x == std::string_view::npos || x == 0 || x + 1 >= part.size())
    fail("--gpus: '{}' is not COUNTxNAME (e.g. 8xH200, 4xA100-40GB, 8x96GB)", part);
  std::string_view count_s = part.substr(0, x), name = trim(part.substr(x + 1));
  int count = 0;
  auto [p, ec] = std::from_chars(count_s.data(), count_s.data() + count_s.size(), count);
  if (ec != std::errc() || p != count_s.data() + count_s.size() || count <= 0 || count > 1024)
    fail("--gpus: '{}': the count '{}' must be a whole number from 1 to 1024", part, count_s);
  GpuGroup g;
  g.count = count;
  if (const GpuSpec* s = table.find(name)) g.spec = *s;
  else if (!parse_memory_only(name, g.spec))
    fail("--gpus: unknown GPU '{}' (known: {}; or give its memory as COUNTxMEMGB, e.g. {}x96GB)", name,
         known_names(table), count);
  return g;
}

}  // namespace

int Cluster::gpus_per_node() const {
  int n = 0;
  for (const GpuGroup& g : groups) n += g.count;
  return n;
}

bool Cluster::mixed() const {
  return std::any_of(groups.begin(), groups.end(), [&](const GpuGroup& g) { return g.spec.name != groups[0].spec.name; });
}

GpuSpec Cluster::planned_gpu() const {
  GpuSpec s = groups.at(0).spec;
  for (const GpuGroup& g : groups) {
    const GpuSpec& o = g.spec;
    if (o.name == s.name) continue;
    s.name += "+" + o.name;
    s.memory_gib = std::min(s.memory_gib, o.memory_gib);
    s.hbm_gbs = std::min(s.hbm_gbs, o.hbm_gbs);
    s.bf16_tflops = std::min(s.bf16_tflops, o.bf16_tflops);
    s.fp8_tflops = std::min(s.fp8_tflops, o.fp8_tflops);
    s.bf16 = s.bf16 && o.bf16;
    if (o.link == LinkType::pcie) s.link = LinkType::pcie;
    s.link_gbs = std::min(s.link_gbs, o.link_gbs);
    if (o.is_custom()) s.arch = "custom";
  }
  // Mixed models share no NVLink domain: their traffic crosses PCIe.
  if (mixed()) {
    if (!s.is_custom()) s.arch = "mixed";
    s.link = LinkType::pcie;
    s.link_gbs = std::min(s.link_gbs, 64.0);
  }
  return s;
}

std::string Cluster::describe() const {
  std::string s;
  for (const GpuGroup& g : groups)
    s += fmt::format("{}{}x {} ({:g} GiB, {})", s.empty() ? "" : " + ", g.count, g.spec.name, g.spec.memory_gib,
                     link_type_name(g.spec.link));
  return s + fmt::format(" per node, {} node{}", n_nodes, n_nodes == 1 ? "" : "s");
}

Cluster parse_cluster(std::string_view spec, int n_nodes, const GpuTable& table) {
  if (n_nodes <= 0 || n_nodes > 4096) fail("--nodes {}: must be from 1 to 4096", n_nodes);
  Cluster c;
  c.n_nodes = n_nodes;
  std::string_view rest = spec;
  if (trim(rest).empty()) fail("--gpus is empty (give COUNTxNAME per node, e.g. 8xH200)");
  while (true) {
    size_t comma = rest.find(',');
    std::string_view part = trim(rest.substr(0, comma));
    if (part.empty()) fail("--gpus '{}': empty entry between commas", spec);
    c.groups.push_back(parse_group(part, table));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (c.gpus_per_node() > 1024) fail("--gpus '{}': more than 1024 GPUs in one node", spec);
  if (int64_t(c.gpus_per_node()) * n_nodes > 65536)
    fail("--gpus '{}' x --nodes {}: more than 65536 GPUs in all", spec, n_nodes);
  return c;
}

}  // namespace dsi::plan
