#pragma once
// The table from hub tensor names to the model's parameters: the only place that knows hub
// names, shapes, stored dtypes and split rules. Loading, validation, dummy weights, TP/EP
// sharding and `dsinfer plan`'s inventory (plan/inventory.cpp) all read it.
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
  // The embedding and lm_head: vocab-parallel (rows) across the TP group where the vocabulary
  // is split, as `dsinfer plan` counts GPU memory; the engine keeps both whole for now
  // (model/sharding.cpp; docs/design/parallel.md says why).
  shard_group_vocab,
};

// How the hub checkpoints store a tensor (what `dsinfer plan` counts bytes from).
enum class StoredDtype {
  stored_weight_dtype,  // the checkpoint's weight dtype: FP8 with block scales in FP8 checkpoints
  stored_bf16,          // bf16 whatever the weight dtype (embeddings, router, lm_head, norms)
  stored_f32,           // float32 (the router's e_score_correction_bias)
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
  StoredDtype stored = StoredDtype::stored_weight_dtype;
};

// Every tensor a checkpoint of this config must hold (MTP layers excluded: they are
// skipped until speculative decoding uses them). When `bind` is given, each spec points at
// its destination inside it; an empty `bind` is first laid out for the config (layers,
// experts, optional parts), a filled one is read as it is.
std::vector<WeightSpec> weight_table(const ModelConfig& c, ModelWeights* bind = nullptr);

// The tensors of the checkpoint's MTP modules (num_nextn_predict_layers of them; layer =
// n_layers + i, names model.layers.<n_layers + i>.*): a decoder layer (MoE when the model
// has experts), enorm, hnorm, eh_proj and the module's own copies of embed_tokens and
// shared_head. The engine does not load them; `dsinfer plan` counts them (--with-mtp).
std::vector<WeightSpec> mtp_weight_table(const ModelConfig& c);

// Hub names of MTP modules start with model.layers.<n_layers + i>.
bool is_mtp_tensor(const ModelConfig& c, const std::string& name);

}  // namespace dsi
