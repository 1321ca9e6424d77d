#pragma once
// `--gpus auto`: the --gpus spec of this machine, from `dsinfer topo`'s NVML reading.
#include <string>

#include "plan/gpu_table.h"
#include "topo/topology.h"

namespace dsi::plan {

// "2xH100-80GB,1xA100-40GB": runs of one model in GPU order, each named by the table entry
// whose name or alias is a leading part of NVML's name ("NVIDIA H100 80GB HBM3" ->
// "H100-80GB") with memory within 10% of what NVML reports, else COUNTxMEMGB. Throws Error
// naming the reason when there is no GPU.
std::string gpus_spec_from_topology(const topo::Topology& t, const GpuTable& table);

}  // namespace dsi::plan
