#include "model/sharding.h"

#include "core/error.h"

namespace dsi {

void check_parallel_layout(const ParallelContext& p, const ModelConfig& c) {
  auto need = [](int64_t n, int parts, const char* what, const char* flag) {
    if (n % parts != 0) fail("{} {} is not divisible by {} {}", what, n, flag, parts);
  };
  need(c.n_heads, p.tp_size, "num_attention_heads", "--tensor-parallel-size");
  need(c.intermediate_size, p.tp_size, "intermediate_size (dense MLP)", "--tensor-parallel-size");
  if (c.n_routed_experts > 0) {
    need(c.n_routed_experts, p.ep_size, "n_routed_experts", "--expert-parallel-size");
    need(c.moe_intermediate_size, p.expert_tp_size,
         "moe_intermediate_size (each routed expert is split across world size / expert-parallel size ranks)",
         "world size / expert-parallel size =");
    need(c.moe_intermediate_size * c.n_shared_experts, p.world_size,
         "the shared experts' width moe_intermediate_size x n_shared_experts (split across all ranks)",
         "the world size");
  } else if (p.ep_size > 1) {
    fail("--expert-parallel-size {}: the model has no routed experts", p.ep_size);
  }
}

ModelConfig local_config(const ParallelContext& p, const ModelConfig& c) {
  ModelConfig l = c;
  l.n_heads = c.n_heads / p.tp_size;
  l.intermediate_size = c.intermediate_size / p.tp_size;
  l.moe_intermediate_size = c.moe_intermediate_size / p.expert_tp_size;
  return l;
}

}  // namespace dsi
