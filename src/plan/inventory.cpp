// The planner's view of the model's weight table (model/weight_map.h): the same tensors,
// shapes, stored dtypes and split rules the engine loads and shards, grouped for the
// parameter breakdown and with each layer's routed experts folded into one entry per
// projection (n_copies = n_routed_experts). No tensor name or split rule is written here.
#include "plan/inventory.h"

#include <map>

#include "core/error.h"
#include "model/weight_map.h"

namespace dsi::plan {

std::string_view param_group_name(ParamGroup g) {
  switch (g) {
    case ParamGroup::embedding: return "embedding";
    case ParamGroup::attention: return "attention";
    case ParamGroup::dense_mlp: return "dense_mlp";
    case ParamGroup::routed_experts: return "routed_experts";
    case ParamGroup::shared_experts: return "shared_experts";
    case ParamGroup::router: return "router";
    case ParamGroup::norms: return "norms";
    case ParamGroup::lm_head: return "lm_head";
  }
  return "?";
}

namespace {

// The name inside its layer: "model.layers.3.self_attn.o_proj.weight" -> "self_attn.o_proj.weight",
// routed expert e's "mlp.experts.<e>.up_proj.weight" -> "mlp.experts.{e}.up_proj.weight".
std::string local_name(const WeightSpec& s) {
  std::string n = s.name;
  if (s.layer >= 0) {
    const std::string prefix = "model.layers." + std::to_string(s.layer) + ".";
    if (n.rfind(prefix, 0) != 0) fail("weight table: {} is not under {}", n, prefix);
    n.erase(0, prefix.size());
  }
  if (s.expert >= 0) {
    const std::string id = "experts." + std::to_string(s.expert) + ".";
    const size_t at = n.find(id);
    if (at == std::string::npos) fail("weight table: routed expert tensor {} does not name expert {}", s.name, s.expert);
    n.replace(at, id.size(), "experts.{e}.");
  }
  return n;
}

ParamGroup group_of(const WeightSpec& s, const std::string& local) {
  switch (s.kind) {
    case WeightKind::weight_kind_embedding: return ParamGroup::embedding;
    case WeightKind::weight_kind_router: return ParamGroup::router;
    case WeightKind::weight_kind_vector:
      // The router's correction bias is the router's; every other vector is a norm.
      return local.rfind("mlp.gate.", 0) == 0 ? ParamGroup::router : ParamGroup::norms;
    case WeightKind::weight_kind_linear: break;
  }
  switch (s.group) {
    case ShardGroup::shard_group_expert: return ParamGroup::routed_experts;
    case ShardGroup::shard_group_all_ranks: return ParamGroup::shared_experts;
    case ShardGroup::shard_group_vocab: return ParamGroup::lm_head;
    case ShardGroup::shard_group_tp:
    case ShardGroup::shard_group_none: break;
  }
  return local.rfind("mlp.", 0) == 0 ? ParamGroup::dense_mlp : ParamGroup::attention;
}

TpSplit split_of(ShardDim d) {
  switch (d) {
    case ShardDim::shard_dim_rows: return TpSplit::rows;
    case ShardDim::shard_dim_cols: return TpSplit::cols;
    case ShardDim::shard_dim_replicated: break;
  }
  return TpSplit::replicated;
}

WeightTensor tensor_of(const WeightSpec& s, std::string local) {
  WeightTensor t;
  t.group = group_of(s, local);
  t.name = std::move(local);
  t.rows = s.shape.at(0);
  t.cols = s.shape.size() > 1 ? s.shape[1] : 1;
  t.quantizable = s.stored == StoredDtype::stored_weight_dtype;
  t.fp32 = s.stored == StoredDtype::stored_f32;
  t.split = split_of(s.shard);
  return t;
}

// Appends the layer's specs to `out`, routed experts folded: expert 0's entry stands for all
// of them, and every expert must have the same tensors.
void add_specs(const std::vector<const WeightSpec*>& specs, int n_experts, std::vector<WeightTensor>& out) {
  std::map<std::string, int64_t> expert_entries;  // folded name -> experts seen
  for (const WeightSpec* s : specs) {
    std::string local = local_name(*s);
    if (s->expert < 0) {
      out.push_back(tensor_of(*s, std::move(local)));
      continue;
    }
    if (++expert_entries[local] > 1) continue;
    WeightTensor t = tensor_of(*s, local);
    t.n_copies = n_experts;
    out.push_back(std::move(t));
  }
  for (const auto& [name, n] : expert_entries)
    if (n != n_experts) fail("weight table: {} appears for {} of {} routed experts", name, n, n_experts);
}

}  // namespace

WeightInventory WeightInventory::from_config(const ModelConfig& c) {
  WeightInventory inv;
  const std::vector<WeightSpec> table = weight_table(c);
  std::vector<const WeightSpec*> outside;  // embedding, final norm, lm_head
  std::vector<std::vector<const WeightSpec*>> by_layer(size_t(c.n_layers));
  for (const WeightSpec& s : table) {
    if (s.layer < 0) outside.push_back(&s);
    else by_layer.at(size_t(s.layer)).push_back(&s);
  }
  // The embedding comes before the layers in the table, the final norm and lm_head after.
  for (const WeightSpec* s : outside) {
    auto& dst = s->kind == WeightKind::weight_kind_embedding ? inv.embedding : inv.head;
    dst.push_back(tensor_of(*s, s->name));
  }
  for (int i = 0; i < c.n_layers; ++i) {
    LayerInventory& l = inv.layers.emplace_back();
    l.moe = c.is_moe_layer(i);
    add_specs(by_layer[size_t(i)], c.n_routed_experts, l.tensors);
  }

  const std::vector<WeightSpec> mtp = mtp_weight_table(c);
  std::vector<std::vector<const WeightSpec*>> by_module(size_t(c.num_nextn_predict_layers));
  for (const WeightSpec& s : mtp) by_module.at(size_t(s.layer - c.n_layers)).push_back(&s);
  for (auto& specs : by_module) {
    LayerInventory& m = inv.mtp.emplace_back();
    m.moe = c.n_routed_experts > 0;
    add_specs(specs, c.n_routed_experts, m.tensors);
  }
  return inv;
}

}  // namespace dsi::plan
