#include "topo/topology.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"

namespace dsi::topo {

std::string link_name(const Link& l) {
  switch (l.kind) {
    case LinkKind::link_self: return "X";
    case LinkKind::link_nvlink: return fmt::format("NV{}", l.n_nvlinks);
    case LinkKind::link_pix: return "PIX";
    case LinkKind::link_pxb: return "PXB";
    case LinkKind::link_phb: return "PHB";
    case LinkKind::link_node: return "NODE";
    case LinkKind::link_sys: return "SYS";
  }
  return "?";
}

std::string cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return out;
}

Placement place_ranks(const Topology& t, int tp, int ep) {
  if (tp < 1 || ep < 1) fail("--tp {} and --ep {} must be at least 1", tp, ep);
  const int n_ranks = std::max(tp, ep);
  if (n_ranks % std::min(tp, ep) != 0)
    fail("--tp {} and --ep {}: the larger must be a multiple of the smaller (TP groups inside the EP group)", tp, ep);
  const int n_gpus = int(t.gpus.size());
  if (n_ranks > n_gpus) fail("--tp {} --ep {} needs {} GPUs; this machine has {}", tp, ep, n_ranks, n_gpus);
  // GPUs NUMA node by node; within a node, grow each group from the lowest free GPU by adding
  // the free GPU with the most NVLinks to the group so far (then the closest PCIe path).
  std::map<int, std::vector<int>> by_numa;
  for (const GpuInfo& g : t.gpus) by_numa[g.numa_node].push_back(g.index);
  std::vector<int> order;
  for (auto& [node, gpus] : by_numa) {
    std::set<int> free(gpus.begin(), gpus.end());
    while (!free.empty()) {
      std::vector<int> group{*free.begin()};
      free.erase(free.begin());
      while (int(group.size()) < tp && !free.empty()) {
        int best = -1;
        std::pair<int, int> best_score{-1, 0};
        for (int c : free) {
          int nv = 0, worst = 0;
          for (int g : group) {
            const Link& l = t.links[size_t(g)][size_t(c)];
            nv += l.n_nvlinks;
            worst = std::max(worst, int(l.kind));
          }
          std::pair<int, int> score{nv, -worst};
          if (score > best_score) best_score = score, best = c;
        }
        group.push_back(best);
        free.erase(best);
      }
      order.insert(order.end(), group.begin(), group.end());
    }
  }
  Placement p;
  p.tp = tp;
  p.ep = ep;
  p.rank_gpu.assign(order.begin(), order.begin() + n_ranks);
  return p;
}

std::vector<std::string> topology_warnings(const Topology& t, const Placement& p) {
  std::vector<std::string> out;
  std::set<std::string> names;
  for (int g : p.rank_gpu) names.insert(t.gpus[size_t(g)].name);
  if (names.size() > 1) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    out.push_back(fmt::format("mixed GPU models ({}): every rank runs at the pace and within the memory of the "
                              "slowest, smallest one, and they share no NVLink domain",
                              list));
  }
  const int n_groups = int(p.rank_gpu.size()) / p.tp;
  for (int grp = 0; grp < n_groups; ++grp) {
    std::vector<int> gpus(p.rank_gpu.begin() + grp * p.tp, p.rank_gpu.begin() + (grp + 1) * p.tp);
    std::string group_name;
    for (int g : gpus) group_name += (group_name.empty() ? "GPU" : ",GPU") + std::to_string(g);
    Link worst{LinkKind::link_self, 0};
    bool across_numa = false;
    for (size_t a = 0; a < gpus.size(); ++a)
      for (size_t b = a + 1; b < gpus.size(); ++b) {
        const Link& l = t.links[size_t(gpus[a])][size_t(gpus[b])];
        if (int(l.kind) > int(worst.kind)) worst = l;
        const int na = t.gpus[size_t(gpus[a])].numa_node, nb = t.gpus[size_t(gpus[b])].numa_node;
        across_numa = across_numa || (na >= 0 && nb >= 0 && na != nb);
      }
    if (int(worst.kind) > int(LinkKind::link_nvlink))
      out.push_back(fmt::format("TP group {} ({}) has GPUs without NVLink between them (worst link {}): its "
                                "all-reduces run over PCIe, every layer, on every token",
                                grp, group_name, link_name(worst)));
    if (worst.kind == LinkKind::link_sys || across_numa)
      out.push_back(fmt::format("TP group {} ({}) spans CPU sockets (NUMA nodes): its traffic crosses the "
                                "inter-socket link; keep a TP group within one socket",
                                grp, group_name));
  }
  for (int g : p.rank_gpu)
    if (!t.gpus[size_t(g)].fp8()) {
      out.push_back(fmt::format("GPU{} ({}, compute capability {}.{}) has no FP8 tensor cores: FP8 checkpoints "
                                "(DeepSeek-V3/R1) run dequantised there",
                                g, t.gpus[size_t(g)].name, t.gpus[size_t(g)].cc_major, t.gpus[size_t(g)].cc_minor));
      break;
    }
  return out;
}

std::string topology_text(const Topology& t, const Placement* p, const std::vector<std::string>& warnings) {
  std::string out;
  auto it = std::back_inserter(out);
  if (!t.available) {
    fmt::format_to(it, "No NVIDIA GPU found: {}\n", t.reason);
    return out;
  }
  fmt::format_to(it, "{} GPU{} (driver {}, CUDA {}.{}, NVML {} from {})\n\n", t.gpus.size(), t.gpus.size() == 1 ? "" : "s",
                 t.driver_version, t.cuda_driver_version / 1000, t.cuda_driver_version % 1000 / 10, t.nvml_version,
                 t.library);
  fmt::format_to(it, "{:<5}{:<26}{:>12}{:>12}{:>5}{:>5}{:>10}{:>10}  {:<18}{:>5}  {}\n", "GPU", "name", "memory",
                 "free", "CC", "FP8", "SM MHz", "mem MHz", "PCI bus", "NUMA", "CPU affinity");
  for (const GpuInfo& g : t.gpus)
    fmt::format_to(it, "{:<5}{:<26}{:>8.1f} GiB{:>8.1f} GiB{:>5}{:>5}{:>10}{:>10}  {:<18}{:>5}  {}\n", g.index,
                   g.name, double(g.memory_total_bytes) / double(1ull << 30),
                   double(g.memory_free_bytes) / double(1ull << 30), fmt::format("{}.{}", g.cc_major, g.cc_minor),
                   g.fp8() ? "yes" : "no", g.max_sm_clock_mhz, g.max_memory_clock_mhz, g.pci_bus_id,
                   g.numa_node >= 0 ? std::to_string(g.numa_node) : "?", cpu_list(g.cpu_affinity));
  fmt::format_to(it, "\nLinks (as nvidia-smi topo -m):\n{:<8}", "");
  for (const GpuInfo& g : t.gpus) fmt::format_to(it, "{:>7}", fmt::format("GPU{}", g.index));
  fmt::format_to(it, "\n");
  for (size_t i = 0; i < t.gpus.size(); ++i) {
    fmt::format_to(it, "{:<8}", fmt::format("GPU{}", t.gpus[i].index));
    for (size_t j = 0; j < t.gpus.size(); ++j) fmt::format_to(it, "{:>7}", link_name(t.links[i][j]));
    fmt::format_to(it, "\n");
  }
  fmt::format_to(it,
                 "  X self; NV# # NVLinks; PIX one PCIe bridge; PXB several PCIe bridges; PHB a PCIe host bridge; "
                 "NODE host bridges within a NUMA node; SYS across NUMA nodes (sockets)\n");
  if (p) {
    fmt::format_to(it, "\nPlacement for --tp {} --ep {} ({} ranks):\n", p->tp, p->ep, p->rank_gpu.size());
    for (size_t r = 0; r < p->rank_gpu.size(); ++r) {
      const GpuInfo& g = t.gpus[size_t(p->rank_gpu[r])];
      fmt::format_to(it, "  rank {:<3} TP group {:<3} GPU{} ({})  CPUs {}\n", r, int(r) / p->tp, g.index,
                     g.pci_bus_id, cpu_list(g.cpu_affinity));
    }
  }
  if (warnings.empty()) fmt::format_to(it, "\nNo warnings.\n");
  else {
    fmt::format_to(it, "\nWarnings:\n");
    for (const auto& w : warnings) fmt::format_to(it, "  warning: {}\n", w);
  }
  return out;
}

Json topology_json(const Topology& t, const Placement* p, const std::vector<std::string>& warnings) {
  Json j{{"available", t.available}};
  if (!t.available) {
    j["reason"] = t.reason;
    j["gpus"] = Json::array();
    return j;
  }
  j["library"] = t.library;
  j["driver_version"] = t.driver_version;
  j["nvml_version"] = t.nvml_version;
  j["cuda_driver_version"] = t.cuda_driver_version;
  Json gpus = Json::array();
  for (const GpuInfo& g : t.gpus)
    gpus.push_back(Json{{"index", g.index},
                        {"name", g.name},
                        {"uuid", g.uuid},
                        {"memory_total_bytes", g.memory_total_bytes},
                        {"memory_free_bytes", g.memory_free_bytes},
                        {"compute_capability", fmt::format("{}.{}", g.cc_major, g.cc_minor)},
                        {"fp8", g.fp8()},
                        {"max_sm_clock_mhz", g.max_sm_clock_mhz},
                        {"max_memory_clock_mhz", g.max_memory_clock_mhz},
                        {"pci_bus_id", g.pci_bus_id},
                        {"numa_node", g.numa_node},
                        {"cpu_affinity", cpu_list(g.cpu_affinity)}});
  j["gpus"] = std::move(gpus);
  Json links = Json::array();
  for (const auto& row : t.links) {
    Json r = Json::array();
    for (const Link& l : row) r.push_back(link_name(l));
    links.push_back(std::move(r));
  }
  j["links"] = std::move(links);
  if (p) j["placement"] = Json{{"tp", p->tp}, {"ep", p->ep}, {"rank_gpu", p->rank_gpu}};
  j["warnings"] = warnings;
  return j;
}

}  // namespace dsi::topo
