#pragma once
// Every weight tensor of a DeepSeek checkpoint, with its shape, derived from config.json alone:
// the table that parameter counts, weight bytes and per-GPU shards are computed from. It is
// read from the model's own weight table (model/weight_map.h: hub names, shapes, stored
// dtypes, split rules), so the planner counts exactly what the engine loads. Shapes are
// [out, in] for a Linear, [n] for a vector.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace dsi::plan {

// What a tensor counts towards in the parameter breakdown.
enum class ParamGroup { embedding, attention, dense_mlp, routed_experts, shared_experts, router, norms, lm_head };
inline constexpr int n_param_groups = 8;
std::string_view param_group_name(ParamGroup g);

// How tensor parallelism splits a tensor (the weight table's ShardDim; vLLM/SGLang MLA
// conventions): rows = the output dimension (column-parallel: q_b_proj, kv_b_proj, gate/up,
// vocab-parallel embedding and head), cols = the input dimension (row-parallel: o_proj,
// down_proj), replicated = every rank holds all of it (q_a_proj and kv_a_proj_with_mqa are
// small and feed the shared latent; norms; router). The planner splits by its layout's TP
// (routed experts by the expert TP inside their EP group).
enum class TpSplit { replicated, rows, cols };

struct WeightTensor {
  std::string name;          // hub name inside its layer, e.g. "self_attn.q_b_proj.weight"
  ParamGroup group = ParamGroup::attention;
  int64_t rows = 0;          // [rows, cols] as stored
  int64_t cols = 1;
  int64_t n_copies = 1;      // identical tensors in the layer (n_routed_experts for routed experts)
  bool quantizable = false;  // a Linear that FP8 / int8 / int4 checkpoints keep quantised
  bool fp32 = false;         // stored in float32 whatever the weight dtype (e_score_correction_bias)
  TpSplit split = TpSplit::replicated;

  int64_t n_params() const { return rows * cols * n_copies; }
};

struct LayerInventory {
  bool moe = false;
  std::vector<WeightTensor> tensors;
};

struct WeightInventory {
  std::vector<WeightTensor> embedding;  // model.embed_tokens
  std::vector<LayerInventory> layers;   // model.layers.0 .. num_hidden_layers-1
  std::vector<WeightTensor> head;       // model.norm, lm_head
  // One entry per MTP module (model.layers.{num_hidden_layers + i}): its decoder layer plus
  // enorm, hnorm, eh_proj and the checkpoint's own copies of embed_tokens and shared_head.
  std::vector<LayerInventory> mtp;

  static WeightInventory from_config(const ModelConfig& c);
};

}  // namespace dsi::plan
