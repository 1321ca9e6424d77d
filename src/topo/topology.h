#pragma once
// What `dsinfer topo` knows about a machine's GPUs: each GPU, how every pair is linked (the
// categories of `nvidia-smi topo -m`), and the checks the deployment guides of large MoE
// models ask for: one GPU model, tensor parallelism over NVLink, a TP group inside one socket.
// Pure data and rules here; nvml.h fills a Topology from the driver.
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace dsi::topo {

struct GpuInfo {
  int index = 0;
  std::string name;  // "NVIDIA H200"
  std::string uuid;
  int64_t memory_total_bytes = 0, memory_free_bytes = 0;
  int cc_major = 0, cc_minor = 0;   // compute capability
  int max_sm_clock_mhz = 0, max_memory_clock_mhz = 0;
  std::string pci_bus_id;           // "00000000:18:00.0"
  int numa_node = -1;               // -1: unknown
  std::vector<int> cpu_affinity;    // CPUs close to the GPU (NVML's ideal affinity)
  // FP8 tensor cores (e4m3/e5m2 MMA): Ada (8.9) and Hopper (9.0) on.
  bool fp8() const { return cc_major > 8 || (cc_major == 8 && cc_minor >= 9); }
};

// How two GPUs reach each other, best first; the names `nvidia-smi topo -m` prints.
enum class LinkKind {
  link_self,        // X
  link_nvlink,      // NV#: # NVLink links between the two
  link_pix,         // PIX: at most one PCIe bridge
  link_pxb,         // PXB: several PCIe bridges, no host bridge
  link_phb,         // PHB: through a PCIe host bridge (a CPU)
  link_node,        // NODE: across host bridges within one NUMA node
  link_sys,         // SYS: across NUMA nodes (the SMP interconnect between sockets, QPI/UPI)
};
struct Link {
  LinkKind kind = LinkKind::link_sys;
  int n_nvlinks = 0;
};
std::string link_name(const Link& l);  // "X", "NV18", "PIX", ...

struct Topology {
  bool available = false;  // NVML answered and found GPUs
  std::string reason;      // why not, when not
  std::string library;     // the NVML library loaded
  std::string driver_version, nvml_version;
  int cuda_driver_version = 0;  // e.g. 12040
  std::vector<GpuInfo> gpus;
  std::vector<std::vector<Link>> links;  // [i][j]
};

// Where each rank of a `--tp` x `--ep` layout runs. Ranks = max(tp, ep) (the larger must be a
// multiple of the smaller: attention TP groups inside one EP group, as DeepSeek is served);
// TP group g holds ranks [g*tp, (g+1)*tp). GPUs are taken NUMA node by node and, within one,
// so that NVLink-connected GPUs land in the same TP group.
struct Placement {
  int tp = 1, ep = 1;
  std::vector<int> rank_gpu;  // rank -> GPU index
};
// Throws Error naming the problem (sizes not positive, not multiples, more ranks than GPUs).
Placement place_ranks(const Topology& t, int tp, int ep);

// The seeds' warnings: mixed GPU models, a TP group over PCIe, a TP group across sockets,
// GPUs without FP8 for an FP8 checkpoint's native path.
std::vector<std::string> topology_warnings(const Topology& t, const Placement& p);

std::string cpu_list(const std::vector<int>& cpus);  // "0-15,32-47"
std::string topology_text(const Topology& t, const Placement* p, const std::vector<std::string>& warnings);
Json topology_json(const Topology& t, const Placement* p, const std::vector<std::string>& warnings);

}  // namespace dsi::topo
