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
  if (dp > 1) {
    // Data-parallel attention: each rank its own sequences, the routed experts over all ranks.
    // Attention TP inside a DP group is not built: one rank per DP group.
    if (tp > 1)
      fail("--data-parallel-size {} with --tensor-parallel-size {}: tensor parallelism inside a data-parallel group "
           "is not supported yet; use --data-parallel-size {} alone (attention replicated per rank, experts split "
           "over all ranks)",
           dp, tp, dp * tp);
    if (world_size != dp)
      fail("--data-parallel-size {} needs exactly {} ranks (one per data-parallel group), the world has {}", dp, dp,
           world_size);
    if (o.expert_parallel_size != 1 && o.expert_parallel_size != world_size)
      fail("--data-parallel-size {} splits the routed experts over all {} ranks; --expert-parallel-size {} does not "
           "match (leave it out, or give {})",
           dp, world_size, o.expert_parallel_size, world_size);
  }
  const int ep = o.enable_expert_parallel || dp > 1 ? world_size : o.expert_parallel_size;
  p.tp_size = tp;
  p.tp_rank = world_rank % tp;
  p.dp_size = dp;
  p.dp_rank = world_rank / tp;
  p.ep_size = ep;
  p.expert_tp_size = world_size / ep;
  p.ep_rank = world_rank / p.expert_tp_size;
  p.expert_tp_rank = world_rank % p.expert_tp_size;
  return p;
}

}  // namespace dsi
