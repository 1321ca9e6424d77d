#pragma once
// The table from hub tensor names to the model's parameters: the only place that knows hub
// names. Loading, validation, dummy weights and (later) TP/EP sharding all read it.
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace dsi {

enum class WeightKind {
  weight_kind_linear,     // [out, in]; FP8 with weight_scale_inv when the checkpoint is quantised
  weight_kind_embedding,  // [vocab, hidden]; never quantised
  weight_kind_router,     // mlp.gate.weight [n_experts, hidden]; never quantised
  weight_kind_vector,     // norms and the router's correction bias: [n]; kept as float32
};

// How a parameter splits across ranks (model/sharding.h, docs/design/parallel.md).
enum class ShardDim {
  shard_dim_replicated,
  shard_dim_rows,  // output features split (column-parallel linear)
  shard_dim_cols,  // input features split (row-parallel linear, followed by an all-reduce)
};

// Across which ranks a split parameter is split.
enum class ShardGroup {
  shard_group_none,       // replicated
  shard_group_tp,         // the attention group: heads, the dense MLP
  shard_group_all_ranks,  // shared experts: every rank a slice, summed with the routed experts
  shard_group_expert,     // routed expert `expert`: owned by one EP group, split across its ranks
};

struct WeightSpec {
  std::string name;  // hub name, e.g. model.layers.3.self_attn.kv_b_proj.weight
  WeightKind kind;
  std::vector<int64_t> shape;
  ShardDim shard;
  ShardGroup group;
  int layer = -1;    // -1 for embedding, final norm and lm_head
  int expert = -1;   // routed expert index, -1 otherwise
  Weight* weight = nullptr;  // where a linear, embedding or router goes
  Tensor* vector = nullptr;  // where a float32 vector goes
};

// Every tensor a checkpoint of this config must hold (MTP layers excluded: they are
// skipped until speculative decoding uses them). When `bind` is given, each spec points at
// its destination inside it; an empty `bind` is first laid out for the config (layers,
// experts, optional parts), a filled one is read as it is.
std::vector<WeightSpec> weight_table(const ModelConfig& c, ModelWeights* bind = nullptr);

// Hub names of MTP modules start with model.layers.<n_layers + i>.
bool is_mtp_tensor(const ModelConfig& c, const std::string& name);

}  // namespace dsi
