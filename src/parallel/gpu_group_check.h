#pragma once
// The GPU startup checks of a parallel job (topo/group_check.h) across its ranks: each rank
// reads its own node's NVML, describes the GPU it runs on, and the descriptions are gathered
// over the world communicator so that every rank judges the same list. An error (mixed GPU
// models) is thrown on every rank alike, so checked_on_every_rank prints it once (rank 0) and
// every rank exits non-zero; warnings (TP over PCIe, TP across nodes) are logged by rank 0.
// The same descriptions decide whether NCCL can carry the model's collectives (two ranks on
// one GPU cannot: collective_choice.h).
#include <string>

#include "parallel/parallel_context.h"
#include "topo/group_check.h"
#include "topo/nvml.h"

namespace dsi {

// Collective over p.world (a world of one checks nothing): every rank calls it, on_gpu saying
// whether this rank runs on GPU device_index. Throws the first error; returns the findings.
topo::GroupCheck check_gpu_group(const ParallelContext& p, bool on_gpu, int device_index,
                                 const std::string& nvml_library = topo::kNvmlLibrary);

// The GPU checks (as check_gpu_group), then, from the same descriptions, how the model's
// collectives move activations: `wanted` (--device-collectives) resolved by
// choose_device_collectives (nccl_built: nccl_collectives_built() where the caller links the
// factory), the choice and its reason logged by rank 0. Collective over p.world; throws the
// first error, the same on every rank. A world of one: host (nothing moves).
DeviceCollectivesMode check_gpus_and_collectives(const ParallelContext& p, bool on_gpu, int device_index,
                                                 DeviceCollectivesMode wanted, bool nccl_built,
                                                 const std::string& nvml_library = topo::kNvmlLibrary);

// Every rank's GPU description, gathered over `world` (rank order). Collective.
std::vector<topo::RankGpu> gather_rank_gpus(Communicator& world, const topo::RankGpu& mine);

}  // namespace dsi
