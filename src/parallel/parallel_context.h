#pragma once
// Where this process sits in the parallel layout (docs/design/parallel.md), passed explicitly
// to the model and the engine: no globals, so two engines can live in one test process.
//
// Ranks 0..world-1 form tp_size-rank attention groups (rank r: tp_rank = r % tp_size); every
// group runs the same batch, except under data-parallel attention (dp_size > 1: tp_size 1,
// one rank per DP group, dp_rank = world_rank), where each rank runs its own sequences and
// the routed experts split over all ranks (ep_size = world_size) with an all-to-all dispatch.
// Attention heads, dense MLPs and shared experts split across a TP group.
// Routed experts split across ep_size expert groups of world/ep_size ranks each (rank r:
// ep_rank = r / (world/ep_size)); within an expert group each expert's intermediate width is
// split across its expert_tp_size ranks. Shared experts split across all ranks, so an MoE
// layer ends in one world all-reduce and an attention block in one TP all-reduce (under DP
// attention they are replicated: each rank's tokens are its own).
#include <memory>
#include <string>

#include "parallel/collective_choice.h"
#include "parallel/communicator.h"
#include "parallel/device_collectives.h"
#include "parallel/timed_communicator.h"

namespace dsi {

// What the user asked for (--tensor-parallel-size, --expert-parallel-size,
// --data-parallel-size, --enable-expert-parallel, --collective-timeout, --device-collectives).
struct ParallelOptions {
  int tensor_parallel_size = 1;
  int expert_parallel_size = 1;
  int data_parallel_size = 1;
  bool enable_expert_parallel = false;  // vLLM's meaning: expert parallelism over all ranks
  double collective_timeout_s = 20;
  // How activations move between ranks (collective_choice.h); resolved once every rank's GPU
  // is known (check_gpus_and_collectives, gpu_group_check.h).
  DeviceCollectivesMode device_collectives = DeviceCollectivesMode::device_collectives_auto;
};

struct ParallelContext {
  int world_rank = 0, world_size = 1;
  int tp_rank = 0, tp_size = 1;
  int ep_rank = 0, ep_size = 1;
  int expert_tp_rank = 0, expert_tp_size = 1;  // a routed expert's width split inside its EP group
  int dp_rank = 0, dp_size = 1;
  // Groups; null in a world of one (no collective is ever needed then).
  std::shared_ptr<Communicator> world;
  std::shared_ptr<Communicator> tp;  // this rank's attention group
  // Seconds this rank spent in the collectives of `world`, `tp` and their splits (they are
  // TimedCommunicators on this clock); null in a world of one.
  std::shared_ptr<CommunicationClock> comm_clock;
  // The model's collectives on activations in backend memory over the ranks of `world` and
  // `tp` (device_collectives.h: NCCL, or staged through the host communicators above). Made by
  // ModelRunner once its backend exists (they need its memory and stream); null before that
  // and in a world of one.
  std::shared_ptr<DeviceCollectives> world_device, tp_device;
  std::string launcher = "none";  // who started the ranks (LaunchInfo::launcher): "openmpi", ...
  int local_rank = 0;             // among the ranks of this node (LaunchInfo::local_rank)

  bool single() const { return world_size == 1; }
  bool is_root() const { return world_rank == 0; }
};

// The ranks and sizes for `options` in a world of `world_size` (no communicators), or an Error
// that names the flag: world size not a multiple of tp x dp, experts not divisible, ...
ParallelContext make_parallel_layout(const ParallelOptions& options, int world_rank, int world_size);

}  // namespace dsi
