#pragma once
// What a rank keeps of the model under a parallel layout (parallel/parallel_context.h,
// docs/design/parallel.md): its heads, its share of the MLP widths, its routed experts.
#include "model/config.h"
#include "parallel/parallel_context.h"

namespace dsi {

// Checks the model's shapes against the layout: heads, MLP widths and experts divisible.
void check_parallel_layout(const ParallelContext& p, const ModelConfig& c);

// The config each rank computes with: its share of the heads (TP), of the dense MLP width
// (TP) and of each routed expert's width (expert TP). Expert counts stay global (the router
// scores every expert on every rank).
ModelConfig local_config(const ParallelContext& p, const ModelConfig& c);

// Routed experts this rank owns: [expert_begin, expert_begin + n_local_experts).
inline int n_local_experts(const ParallelContext& p, const ModelConfig& c) { return c.n_routed_experts / p.ep_size; }
inline int expert_begin(const ParallelContext& p, const ModelConfig& c) { return p.ep_rank * n_local_experts(p, c); }

}  // namespace dsi
