#pragma once
// Startup checks on the GPUs of a parallel job (docs/multi-rank.md): every rank describes the
// GPU it runs on as its own node's NVML sees it (RankGpu), the descriptions are gathered, and
// every rank judges the same list the same way: mixed GPU models are an error (the job would
// run at the pace and within the memory of the weakest GPU, and the checkpoint's layout
// assumes one model); a tensor-parallel group whose GPUs are not all NVLink peers, or that
// spans nodes, is a warning (its two all-reduces per layer run over PCIe or the network).
// Pure data and rules; parallel/gpu_group_check.h does the gathering.
#include <string>
#include <vector>

#include "core/json.h"
#include "topo/topology.h"

namespace dsi::topo {

struct RankGpu {
  bool gpu = true;           // false: the rank runs on the CPU (nothing else is set)
  std::string host;
  int index = 0;             // the GPU's index on its node
  std::string name, bus_id;  // "NVIDIA H200", "00000000:18:00.0"
  std::vector<std::string> links;  // link_name() to every GPU of the node, by index
  std::string problem;       // why the GPU could not be described (no NVML, no such GPU); empty: fine

  Json to_json() const;
  static RankGpu from_json(const Json& j);
};

// The rank's GPU `index` in `t` (the node's topology); problem set when NVML is unavailable
// or there is no such GPU.
RankGpu describe_rank_gpu(const Topology& t, const std::string& host, int index);
// A rank that runs on the CPU.
RankGpu cpu_rank(const std::string& host);

// The NVML index (t.gpus) of CUDA device `cuda_index` under CUDA_VISIBLE_DEVICES = `visible`
// (null: unset). NVML numbers every GPU of the node in PCI bus order; CUDA numbers only the
// visible ones, in the order listed (indices or GPU-UUID prefixes), so a rank started with its
// own CUDA_VISIBLE_DEVICES runs on its "device 0" of another GPU. (CUDA's default order is PCI
// bus order among GPUs of one model, the only kind a job may hold.) -1 with `problem` set when
// it cannot be told: a MIG instance, an entry NVML does not list, too few entries.
int nvml_index_of_cuda_device(const Topology& t, int cuda_index, const char* visible, std::string& problem);

struct GroupCheck {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// ranks[r] is world rank r's GPU; TP group g holds ranks [g*tp_size, (g+1)*tp_size).
// Several ranks on one GPU (same node and bus id) is allowed: they share it. Ranks on the CPU
// beside ranks on GPUs are an error; a job all on the CPU has nothing to check.
GroupCheck check_rank_gpus(const std::vector<RankGpu>& ranks, int tp_size);

}  // namespace dsi::topo
