#include "plan/auto_gpus.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"

namespace dsi::plan {

namespace {

std::string table_name(const topo::GpuInfo& g, const GpuTable& table) {
  // "NVIDIA GeForce RTX 4090" -> "RTX-4090"; then the longest leading run of its parts the
  // table knows: "H100-80GB-HBM3" -> "H100-80GB", "A100-SXM4-40GB" -> ... -> "A100".
  std::string name = g.name;
  for (const char* prefix : {"NVIDIA ", "GeForce "})
    if (name.rfind(prefix, 0) == 0) name = name.substr(std::string(prefix).size());
  for (char& c : name)
    if (c == ' ') c = '-';
  const double gib = double(g.memory_total_bytes) / double(1ull << 30);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dash = name.find('-', start);
    parts.push_back(name.substr(start, dash - start));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  // Every sub-sequence of parts that keeps the first, longest first: the memory check then picks
  // the right entry ("A100" + "40GB" for A100-SXM4-40GB, not plain "A100" of another size).
  const size_t n = parts.size();
  for (size_t len = n; len >= 1; --len)
    for (uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {
      if (size_t(__builtin_popcount(mask)) + 1 != len) continue;
      std::string candidate = parts[0];
      for (size_t k = 1; k < n; ++k)
        if (mask >> (k - 1) & 1u) candidate += "-" + parts[k];
      const GpuSpec* s = table.find(candidate);
      if (s && std::abs(s->memory_gib - gib) <= 0.1 * s->memory_gib) return s->name;
    }
  return fmt::format("{:.0f}GB", std::floor(gib));
}

}  // namespace

std::string gpus_spec_from_topology(const topo::Topology& t, const GpuTable& table) {
  if (!t.available) fail("--gpus auto: {}; give --gpus (e.g. 8xH200)", t.reason);
  std::string spec;
  for (size_t i = 0; i < t.gpus.size();) {
    const std::string name = table_name(t.gpus[i], table);
    size_t j = i;
    while (j < t.gpus.size() && table_name(t.gpus[j], table) == name) ++j;
    spec += fmt::format("{}{}x{}", spec.empty() ? "" : ",", j - i, name);
    i = j;
  }
  return spec;
}

}  // namespace dsi::plan
