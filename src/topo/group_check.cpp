#include "topo/group_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace dsi::topo {

Json RankGpu::to_json() const {
  return Json{{"gpu", gpu}, {"host", host}, {"index", index}, {"name", name}, {"bus_id", bus_id}, {"links", links},
              {"problem", problem}};
}

RankGpu RankGpu::from_json(const Json& j) {
  RankGpu g;
  g.gpu = j.at("gpu").get<bool>();
  g.host = j.at("host").get<std::string>();
  g.index = j.at("index").get<int>();
  g.name = j.at("name").get<std::string>();
  g.bus_id = j.at("bus_id").get<std::string>();
  g.links = j.at("links").get<std::vector<std::string>>();
  g.problem = j.at("problem").get<std::string>();
  return g;
}

RankGpu describe_rank_gpu(const Topology& t, const std::string& host, int index) {
  RankGpu g;
  g.host = host;
  g.index = index;
  if (!t.available) {
    g.problem = "NVML is not available (" + t.reason + ")";
    return g;
  }
  if (index < 0 || size_t(index) >= t.gpus.size()) {
    g.problem = fmt::format("NVML lists {} GPUs, none with index {}", t.gpus.size(), index);
    return g;
  }
  g.name = t.gpus[size_t(index)].name;
  g.bus_id = t.gpus[size_t(index)].pci_bus_id;
  for (const Link& l : t.links[size_t(index)]) g.links.push_back(link_name(l));
  return g;
}

RankGpu cpu_rank(const std::string& host) {
  RankGpu g;
  g.gpu = false;
  g.host = host;
  g.index = -1;
  return g;
}

int nvml_index_of_cuda_device(const Topology& t, int cuda_index, const char* visible, std::string& problem) {
  if (!visible) return cuda_index;
  std::vector<std::string> entries;
  for (std::string rest = visible;;) {
    const size_t comma = rest.find(',');
    std::string e = rest.substr(0, comma);
    e.erase(0, e.find_first_not_of(" \t"));
    e.erase(e.find_last_not_of(" \t") + 1);
    entries.push_back(e);
    if (comma == std::string::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (cuda_index < 0 || size_t(cuda_index) >= entries.size() || entries[size_t(cuda_index)].empty()) {
    problem = fmt::format("CUDA_VISIBLE_DEVICES='{}' has no device {}", visible, cuda_index);
    return -1;
  }
  const std::string& e = entries[size_t(cuda_index)];
  if (e.find_first_not_of("0123456789") == std::string::npos && e.size() < 6) {
    const int i = std::stoi(e);
    if (size_t(i) < t.gpus.size()) return i;
  } else if (e.rfind("GPU-", 0) == 0) {
    for (size_t i = 0; i < t.gpus.size(); ++i)
      if (t.gpus[i].uuid.rfind(e, 0) == 0) return int(i);
  }
  problem = fmt::format("CUDA_VISIBLE_DEVICES entry '{}' (device {}) is none of the {} GPUs NVML lists", e, cuda_index,
                        t.gpus.size());
  return -1;
}

namespace {

// "ranks 0-3", "rank 5", "ranks 0,2,4"
std::string rank_list(const std::vector<int>& r) {
  if (r.size() == 1) return fmt::format("rank {}", r[0]);
  bool contiguous = true;
  for (size_t i = 1; i < r.size(); ++i) contiguous = contiguous && r[i] == r[i - 1] + 1;
  if (contiguous) return fmt::format("ranks {}-{}", r.front(), r.back());
  return fmt::format("ranks {}", fmt::join(r, ","));
}

}  // namespace

GroupCheck check_rank_gpus(const std::vector<RankGpu>& ranks, int tp_size) {
  GroupCheck out;
  std::vector<int> unknown, on_cpu, on_gpu;
  std::vector<std::pair<std::string, std::vector<int>>> by_model;  // in order of first rank
  for (size_t r = 0; r < ranks.size(); ++r) {
    (ranks[r].gpu ? on_gpu : on_cpu).push_back(int(r));
    if (!ranks[r].gpu) continue;
    if (!ranks[r].problem.empty()) unknown.push_back(int(r));
    else {
      auto it = std::find_if(by_model.begin(), by_model.end(), [&](const auto& m) { return m.first == ranks[r].name; });
      if (it == by_model.end()) it = by_model.insert(by_model.end(), {ranks[r].name, {}});
      it->second.push_back(int(r));
    }
  }
  if (on_gpu.empty()) return out;
  if (!on_cpu.empty()) {
    out.errors.push_back(fmt::format("some ranks run on the CPU ({}) and some on GPUs ({}): give every rank the same --device",
                                     rank_list(on_cpu), rank_list(on_gpu)));
    return out;
  }
  if (!unknown.empty())
    out.warnings.push_back(fmt::format("the GPUs of {} could not be checked: {}", rank_list(unknown),
                                       ranks[size_t(unknown[0])].problem));
  if (by_model.size() > 1) {
    std::vector<std::string> parts;
    for (const auto& [name, rs] : by_model) parts.push_back(fmt::format("{} on {}", rank_list(rs), name));
    out.errors.push_back(fmt::format("mixed GPU models in one job ({}): every rank would run at the pace and within "
                                     "the memory of the slowest, smallest GPU; run one GPU model per job",
                                     fmt::join(parts, ", ")));
  }
  if (tp_size <= 1) return out;
  for (size_t g0 = 0; g0 + size_t(tp_size) <= ranks.size(); g0 += size_t(tp_size)) {
    const int group = int(g0) / tp_size;
    bool across_nodes = false;
    std::string pcie;  // the first pair without NVLink
    for (size_t a = g0; a < g0 + size_t(tp_size); ++a)
      for (size_t b = a + 1; b < g0 + size_t(tp_size); ++b) {
        const RankGpu &x = ranks[a], &y = ranks[b];
        if (!x.problem.empty() || !y.problem.empty()) continue;
        if (x.host != y.host) {
          across_nodes = true;
          continue;
        }
        if (x.bus_id == y.bus_id) continue;  // one GPU shared by both ranks
        const std::string link = size_t(y.index) < x.links.size() ? x.links[size_t(y.index)] : "?";
        if (link.rfind("NV", 0) != 0 && pcie.empty())
          pcie = fmt::format("rank {} (GPU {}) and rank {} (GPU {}) on {} are linked by {}", a, x.index, b, y.index,
                             x.host, link);
      }
    if (!pcie.empty())
      out.warnings.push_back(fmt::format("tensor-parallel group {} has GPUs without NVLink between them ({}): its two "
                                         "all-reduces per layer run over PCIe on every token; keep TP inside an "
                                         "NVLink domain and use --expert-parallel-size across PCIe",
                                         group, pcie));
    if (across_nodes)
      out.warnings.push_back(fmt::format("tensor-parallel group {} spans nodes: its all-reduces cross the network on "
                                         "every layer; keep TP inside a node (docs/multi-node.md)",
                                         group));
  }
  return out;
}

}  // namespace dsi::topo
