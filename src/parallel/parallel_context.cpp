#include "parallel/parallel_context.h"

#include "core/error.h"

namespace dsi {

ParallelContext make_parallel_layout(const ParallelOptions& o, int world_rank, int world_size) {
  ParallelContext p;
  p.world_rank = world_rank;
  p.world_size = world_size;
  const int tp = o.tensor_parallel_size, dp = o.data_parallel_size;
  if (tp < 1) fail("--tensor-parallel-size {} must be at least 1", tp);
  if (dp < 1) fail("--data-parallel-size {} must be at least 1", dp);
  if (o.expert_parallel_size < 1) fail("--expert-parallel-size {} must be at least 1", o.expert_parallel_size);
  if (world_size % (tp * dp) != 0)
    fail("the world has {} ranks, which is not a multiple of --tensor-parallel-size {} x --data-parallel-size {} "
         "(launch with mpirun -np {} or change the sizes)",
         world_size, tp, dp, tp * dp);
  if (dp > 1)
    fail("--data-parallel-size {}: data-parallel attention is not implemented yet (attention groups all run the same "
         "batch); use --tensor-parallel-size and --expert-parallel-size",
         dp);
  const int ep = o.enable_expert_parallel ? world_size : o.expert_parallel_size;
  if (o.enable_expert_parallel && o.expert_parallel_size != 1 && o.expert_parallel_size != world_size)
    fail("--enable-expert-parallel means expert parallelism over all {} ranks, but --expert-parallel-size is {}",
         world_size, o.expert_parallel_size);
  if (world_size % ep != 0)
    fail("--expert-parallel-size {} does not divide the world of {} ranks", ep, world_size);
  p.tp_size = tp;
  p.tp_rank = world_rank % tp;
  p.dp_size = dp;
  p.dp_rank = 0;
  p.ep_size = ep;
  p.expert_tp_size = world_size / ep;
  p.ep_rank = world_rank / p.expert_tp_size;
  p.expert_tp_rank = world_rank % p.expert_tp_size;
  return p;
}

}  // namespace dsi
