#pragma once
// `--gpus` and `--nodes`: what hardware the plan is for. The spec names the GPUs of one node as
// comma-separated COUNTxNAME groups ("8xH200", "4xH100-80GB,4xA100-80GB") or COUNTxMEMGB for
// GPUs the table does not know ("8x96GB"); every node is the same.
#include <string>
#include <string_view>
#include <vector>

#include "plan/gpu_table.h"

namespace dsi::plan {

struct GpuGroup {
  int count = 0;
  GpuSpec spec;
};

struct Cluster {
  std::vector<GpuGroup> groups;  // of one node, in spec order
  int n_nodes = 1;

  int gpus_per_node() const;
  int n_gpus() const { return gpus_per_node() * n_nodes; }
  bool mixed() const;  // more than one GPU model in the node
  // What every GPU is planned as: the smallest memory, bandwidth, throughput and link of the
  // node's GPUs, and FP8 only when all of them have it (a layout runs at its slowest rank).
  GpuSpec planned_gpu() const;
  std::string describe() const;  // "8x H200 (141 GiB, nvlink), 1 node"
};

// Parses a --gpus spec against a GPU table; errors name the malformed part or unknown GPU.
Cluster parse_cluster(std::string_view spec, int n_nodes, const GpuTable& table);

}  // namespace dsi::plan
