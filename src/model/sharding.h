#pragma once
// What a rank keeps of the model under a parallel layout (parallel/parallel_context.h,
// docs/design/parallel.md): its heads, its share of the MLP widths, its routed experts.
#include "model/config.h"
#include "model/weights.h"
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

// This rank's slices of the full model's host views (`w` as loaded for the global config `c`),
// as the weight table's shard rules say: row slices stay views into the checkpoint (an FP8
// slice keeps its block scales through Weight::row_offset, so no block boundary needs to
// line up), column slices are packed copies (FP8: its scale columns when the slice starts on
// a block boundary, else the slice dequantised to float32, the same values the GEMM uses),
// routed experts other ranks own are dropped. Only the kept bytes of a memory-mapped
// checkpoint are ever read. A world of one returns `w` unchanged.
ModelWeights shard_weights(const ModelConfig& c, const ParallelContext& p, ModelWeights w);

}  // namespace dsi
