#pragma once
// How the model's collectives move activations between ranks (--device-collectives;
// docs/multi-rank.md): NCCL on the GPU memory itself, or staged through host memory and the
// MPI communicator (parallel/device_collectives.h). NCCL needs every rank on a GPU of its own:
// it refuses two ranks of one group on one device ("Duplicate GPU detected"), which is how the
// tests and one-GPU machines run several ranks; the CPU has only the host path. Pure rules over
// every rank's GPU description (gathered by parallel/gpu_group_check.h), so that every rank
// reaches the same choice and an error is the same error everywhere.
#include <string>
#include <vector>

#include "topo/group_check.h"

namespace dsi {

enum class DeviceCollectivesMode {
  device_collectives_auto,  // nccl where it can run (below), else host
  device_collectives_nccl,
  device_collectives_host,
};

// "auto", "nccl", "host"; anything else is an Error naming --device-collectives.
DeviceCollectivesMode parse_device_collectives(const std::string& text);
const char* device_collectives_name(DeviceCollectivesMode m);

struct DeviceCollectivesChoice {
  DeviceCollectivesMode mode = DeviceCollectivesMode::device_collectives_host;  // nccl or host, never auto
  std::string reason;  // why, for rank 0's log
};

// ranks[r] is world rank r's GPU (topo::cpu_rank for a CPU rank). NCCL runs when there is more
// than one rank, every rank is on a GPU, the build has NCCL, and no two ranks share a GPU
// (same host and PCIe bus id). `auto` takes it then and the host path otherwise, also when a
// GPU could not be described (NVML missing: sharing cannot be ruled out). `nccl` where NCCL
// cannot run is an Error naming the flag and the reason (a GPU that could not be described
// does not stop it: NCCL itself refuses a shared device). A world of one: host, which moves
// nothing.
DeviceCollectivesChoice choose_device_collectives(DeviceCollectivesMode wanted, const std::vector<topo::RankGpu>& ranks,
                                                  bool nccl_built);

// The first two ranks on one GPU ("ranks 0 and 1 share GPU 0 (00000000:18:00.0) on host h"), or
// empty. Ranks whose GPU could not be described are skipped.
std::string shared_gpu(const std::vector<topo::RankGpu>& ranks);

}  // namespace dsi
