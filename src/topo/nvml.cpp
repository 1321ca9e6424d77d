#include "topo/nvml.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>

namespace dsi::topo {

namespace {

// NVML's C ABI (nvml.h of the driver): only what is read here.
using nvmlReturn_t = int;
constexpr nvmlReturn_t kNvmlSuccess = 0;
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlPciInfo_t {
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
};
constexpr int kClockSm = 1, kClockMem = 2;
constexpr unsigned kMaxNvLinks = 18;  // NVML_NVLINK_MAX_LINKS
// nvmlGpuTopologyLevel_t
constexpr int kTopoInternal = 0, kTopoSingle = 10, kTopoMultiple = 20, kTopoHostBridge = 30, kTopoNode = 40;

// The loaded library and its entry points; unloads (after nvmlShutdown) when destroyed.
struct Nvml {
  void* handle = nullptr;
  bool initialised = false;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*driver_version)(char*, unsigned) = nullptr;
  nvmlReturn_t (*nvml_version)(char*, unsigned) = nullptr;
  nvmlReturn_t (*cuda_driver_version)(int*) = nullptr;
  nvmlReturn_t (*count)(unsigned*) = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*compute_capability)(nvmlDevice_t, int*, int*) = nullptr;
  nvmlReturn_t (*max_clock)(nvmlDevice_t, int, unsigned*) = nullptr;
  nvmlReturn_t (*pci_info)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*common_ancestor)(nvmlDevice_t, nvmlDevice_t, int*) = nullptr;
  nvmlReturn_t (*nvlink_state)(nvmlDevice_t, unsigned, int*) = nullptr;
  nvmlReturn_t (*nvlink_remote_pci)(nvmlDevice_t, unsigned, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*cpu_affinity)(nvmlDevice_t, unsigned, unsigned long*) = nullptr;
  nvmlReturn_t (*numa_node)(nvmlDevice_t, unsigned*) = nullptr;

  ~Nvml() {
    if (initialised && shutdown) shutdown();
    if (handle) dlclose(handle);
  }
  template <class F>
  void bind(F& f, const char* symbol) {
    f = reinterpret_cast<F>(dlsym(handle, symbol));
  }
  std::string error(nvmlReturn_t r) const {
    return error_string ? fmt::format("{} (NVML error {})", error_string(r), r) : fmt::format("NVML error {}", r);
  }
};

// "00000000:18:00.0" and "0000:18:00.0" name the same device: compare the last 12 characters.
std::string normal_bus_id(const char* bus_id) {
  std::string s(bus_id);
  if (s.size() > 12) s = s.substr(s.size() - 12);
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int sysfs_numa_node(const std::string& bus_id) {
  std::ifstream in("/sys/bus/pci/devices/" + bus_id + "/numa_node");
  int node = -1;
  if (in >> node) return node;
  return -1;
}

Link pcie_link(int level) {
  if (level <= kTopoSingle) return {LinkKind::link_pix, 0};
  (void)kTopoInternal;
  if (level <= kTopoMultiple) return {LinkKind::link_pxb, 0};
  if (level <= kTopoHostBridge) return {LinkKind::link_phb, 0};
  if (level <= kTopoNode) return {LinkKind::link_node, 0};
  return {LinkKind::link_sys, 0};
}

}  // namespace

Topology read_topology(const std::string& library) {
  Topology t;
  t.library = library;
  Nvml n;
  n.handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!n.handle) {
    const char* why = dlerror();
    t.reason = fmt::format("cannot load {} ({}): the NVIDIA driver is not installed here", library, why ? why : "?");
    return t;
  }
  n.bind(n.init, "nvmlInit_v2");
  n.bind(n.shutdown, "nvmlShutdown");
  n.bind(n.error_string, "nvmlErrorString");
  n.bind(n.driver_version, "nvmlSystemGetDriverVersion");
  n.bind(n.nvml_version, "nvmlSystemGetNVMLVersion");
  n.bind(n.cuda_driver_version, "nvmlSystemGetCudaDriverVersion");
  n.bind(n.count, "nvmlDeviceGetCount_v2");
  n.bind(n.handle_by_index, "nvmlDeviceGetHandleByIndex_v2");
  n.bind(n.name, "nvmlDeviceGetName");
  n.bind(n.uuid, "nvmlDeviceGetUUID");
  n.bind(n.memory, "nvmlDeviceGetMemoryInfo");
  n.bind(n.compute_capability, "nvmlDeviceGetCudaComputeCapability");
  n.bind(n.max_clock, "nvmlDeviceGetMaxClockInfo");
  n.bind(n.pci_info, "nvmlDeviceGetPciInfo_v3");
  n.bind(n.common_ancestor, "nvmlDeviceGetTopologyCommonAncestor");
  n.bind(n.nvlink_state, "nvmlDeviceGetNvLinkState");
  n.bind(n.nvlink_remote_pci, "nvmlDeviceGetNvLinkRemotePciInfo_v2");
  n.bind(n.cpu_affinity, "nvmlDeviceGetCpuAffinity");
  n.bind(n.numa_node, "nvmlDeviceGetNumaNodeId");
  if (!n.init || !n.shutdown || !n.count || !n.handle_by_index || !n.name || !n.memory) {
    t.reason = fmt::format("{} lacks NVML's basic entry points (nvmlInit_v2, nvmlDeviceGetCount_v2, ...)", library);
    return t;
  }
  if (nvmlReturn_t r = n.init(); r != kNvmlSuccess) {
    t.reason = fmt::format("nvmlInit failed: {}", n.error(r));
    return t;
  }
  n.initialised = true;
  char buf[256] = {};
  if (n.driver_version && n.driver_version(buf, sizeof buf) == kNvmlSuccess) t.driver_version = buf;
  if (n.nvml_version && n.nvml_version(buf, sizeof buf) == kNvmlSuccess) t.nvml_version = buf;
  if (n.cuda_driver_version) n.cuda_driver_version(&t.cuda_driver_version);
  unsigned count = 0;
  if (nvmlReturn_t r = n.count(&count); r != kNvmlSuccess) {
    t.reason = fmt::format("nvmlDeviceGetCount failed: {}", n.error(r));
    return t;
  }
  if (count == 0) {
    t.reason = "the NVIDIA driver reports no GPU";
    return t;
  }

  std::vector<nvmlDevice_t> devices(count);
  std::vector<std::string> bus_ids(count);
  for (unsigned i = 0; i < count; ++i) {
    if (nvmlReturn_t r = n.handle_by_index(i, &devices[i]); r != kNvmlSuccess) {
      t.reason = fmt::format("GPU {}: nvmlDeviceGetHandleByIndex failed: {}", i, n.error(r));
      t.gpus.clear();
      return t;
    }
    nvmlDevice_t d = devices[i];
    GpuInfo g;
    g.index = int(i);
    if (n.name(d, buf, sizeof buf) == kNvmlSuccess) g.name = buf;
    if (n.uuid && n.uuid(d, buf, sizeof buf) == kNvmlSuccess) g.uuid = buf;
    nvmlMemory_t mem{};
    if (n.memory(d, &mem) == kNvmlSuccess) {
      g.memory_total_bytes = int64_t(mem.total);
      g.memory_free_bytes = int64_t(mem.free);
    }
    if (n.compute_capability) n.compute_capability(d, &g.cc_major, &g.cc_minor);
    unsigned mhz = 0;
    if (n.max_clock && n.max_clock(d, kClockSm, &mhz) == kNvmlSuccess) g.max_sm_clock_mhz = int(mhz);
    if (n.max_clock && n.max_clock(d, kClockMem, &mhz) == kNvmlSuccess) g.max_memory_clock_mhz = int(mhz);
    nvmlPciInfo_t pci{};
    if (n.pci_info && n.pci_info(d, &pci) == kNvmlSuccess) {
      g.pci_bus_id = pci.busId;
      bus_ids[i] = normal_bus_id(pci.busId);
    }
    unsigned node = 0;
    if (n.numa_node && n.numa_node(d, &node) == kNvmlSuccess) g.numa_node = int(node);
    else if (!bus_ids[i].empty()) g.numa_node = sysfs_numa_node(bus_ids[i]);
    if (n.cpu_affinity) {
      constexpr unsigned kWords = 64;  // 4096 CPUs
      unsigned long set[kWords] = {};
      if (n.cpu_affinity(d, kWords, set) == kNvmlSuccess)
        for (unsigned w = 0; w < kWords; ++w)
          for (unsigned b = 0; b < 8 * sizeof(unsigned long); ++b)
            if (set[w] >> b & 1UL) g.cpu_affinity.push_back(int(w * 8 * sizeof(unsigned long) + b));
    }
    t.gpus.push_back(std::move(g));
  }

  // NVLinks: a link whose far end is another GPU joins the two directly; one whose far end is
  // no GPU goes to an NVSwitch, which joins every GPU with switch links (HGX boards):
  // nvidia-smi shows both as NV#.
  std::vector<std::vector<int>> direct(count, std::vector<int>(count, 0));
  std::vector<int> switch_links(count, 0);
  if (n.nvlink_state && n.nvlink_remote_pci)
    for (unsigned i = 0; i < count; ++i)
      for (unsigned link = 0; link < kMaxNvLinks; ++link) {
        int active = 0;
        if (n.nvlink_state(devices[i], link, &active) != kNvmlSuccess || !active) continue;
        nvmlPciInfo_t remote{};
        if (n.nvlink_remote_pci(devices[i], link, &remote) != kNvmlSuccess) continue;
        const std::string id = normal_bus_id(remote.busId);
        auto peer = std::find(bus_ids.begin(), bus_ids.end(), id);
        if (peer != bus_ids.end()) ++direct[i][size_t(peer - bus_ids.begin())];
        else ++switch_links[i];
      }
  t.links.assign(count, std::vector<Link>(count));
  for (unsigned i = 0; i < count; ++i)
    for (unsigned j = 0; j < count; ++j) {
      if (i == j) {
        t.links[i][j] = {LinkKind::link_self, 0};
        continue;
      }
      const int nv = direct[i][j] + std::min(switch_links[i], switch_links[j]);
      if (nv > 0) {
        t.links[i][j] = {LinkKind::link_nvlink, nv};
        continue;
      }
      int level = 50;
      if (n.common_ancestor && n.common_ancestor(devices[i], devices[j], &level) != kNvmlSuccess) level = 50;
      t.links[i][j] = pcie_link(level);
    }
  t.available = true;
  return t;
}

}  // namespace dsi::topo
