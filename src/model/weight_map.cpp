#include "model/weight_map.h"

#include "core/error.h"

namespace dsi {

namespace {

class TableBuilder {
 public:
  explicit TableBuilder(bool bind) : bind_(bind) {}

  // A replicated parameter (shard_dim_replicated) has group none; a split one the TP group
  // unless said otherwise.
  void linear(std::string name, WeightKind kind, std::vector<int64_t> shape, ShardDim shard, Weight* dst,
              int layer = -1, int expert = -1, ShardGroup group = ShardGroup::shard_group_tp) {
    if (shard == ShardDim::shard_dim_replicated) group = ShardGroup::shard_group_none;
    out.push_back(
        {std::move(name), kind, std::move(shape), shard, group, layer, expert, bind_ ? dst : nullptr, nullptr});
  }
  void vector(std::string name, int64_t n, Tensor* dst, int layer = -1) {
    out.push_back({std::move(name), WeightKind::weight_kind_vector, {n}, ShardDim::shard_dim_replicated,
                   ShardGroup::shard_group_none, layer, -1, nullptr, bind_ ? dst : nullptr});
  }
  // Column-parallel gate and up, row-parallel down, across `group`.
  void mlp(const std::string& p, int64_t hidden, int64_t inter, MlpWeights* dst, int layer, int expert,
           ShardGroup group) {
    auto L = WeightKind::weight_kind_linear;
    using enum ShardDim;
    linear(p + "gate_proj.weight", L, {inter, hidden}, shard_dim_rows, dst ? &dst->gate : nullptr, layer, expert, group);
    linear(p + "up_proj.weight", L, {inter, hidden}, shard_dim_rows, dst ? &dst->up : nullptr, layer, expert, group);
    linear(p + "down_proj.weight", L, {hidden, inter}, shard_dim_cols, dst ? &dst->down : nullptr, layer, expert,
           group);
  }

  std::vector<WeightSpec> out;

 private:
  bool bind_;
};

}  // namespace

// Gives every optional part of `w` the shape the config asks for.
void lay_out(const ModelConfig& c, ModelWeights& w) {
  w.layers.assign(size_t(c.n_layers), LayerWeights{});
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = w.layers[size_t(l)];
    if (c.q_lora_rank) {
      lw.attn.q_a.emplace();
      lw.attn.q_b.emplace();
    } else {
      lw.attn.q_proj.emplace();
    }
    if (!c.is_moe_layer(l)) {
      lw.mlp.emplace();
      continue;
    }
    lw.moe.emplace().experts.resize(size_t(c.n_routed_experts));
    if (c.n_shared_experts > 0) lw.moe->shared.emplace();
  }
}

std::vector<WeightSpec> weight_table(const ModelConfig& c, ModelWeights* bind) {
  using enum WeightKind;
  using enum ShardDim;
  using enum ShardGroup;
  const int64_t H = c.hidden_size, nh = c.n_heads;
  ModelWeights scratch;  // destinations when the caller only wants the table
  ModelWeights& w = bind ? *bind : scratch;
  if (w.layers.empty()) lay_out(c, w);
  if (int(w.layers.size()) != c.n_layers) fail("weight_table: weights laid out for another config");
  TableBuilder t(bind != nullptr);

  // The embedding and lm_head are replicated: a vocab-parallel split would save their memory
  // per rank at the price of an all-gather of the logits (docs/design/parallel.md).
  t.linear("model.embed_tokens.weight", weight_kind_embedding, {c.vocab_size, H}, shard_dim_replicated, &w.embed);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = w.layers[size_t(l)];
    MlaWeights& at = lw.attn;
    std::string p = "model.layers." + std::to_string(l) + ".";
    std::string a = p + "self_attn.";
    t.vector(p + "input_layernorm.weight", H, &lw.input_norm, l);
    t.vector(p + "post_attention_layernorm.weight", H, &lw.post_norm, l);
    if (c.q_lora_rank) {
      t.linear(a + "q_a_proj.weight", weight_kind_linear, {*c.q_lora_rank, H}, shard_dim_replicated, &*at.q_a, l);
      t.vector(a + "q_a_layernorm.weight", *c.q_lora_rank, &at.q_a_norm, l);
      t.linear(a + "q_b_proj.weight", weight_kind_linear, {nh * c.qk_head_dim(), *c.q_lora_rank}, shard_dim_rows,
               &*at.q_b, l);
    } else {
      t.linear(a + "q_proj.weight", weight_kind_linear, {nh * c.qk_head_dim(), H}, shard_dim_rows, &*at.q_proj, l);
    }
    t.linear(a + "kv_a_proj_with_mqa.weight", weight_kind_linear, {c.kv_cache_dim(), H}, shard_dim_replicated,
             &at.kv_a, l);
    t.vector(a + "kv_a_layernorm.weight", c.kv_lora_rank, &at.kv_a_norm, l);
    t.linear(a + "kv_b_proj.weight", weight_kind_linear, {nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank},
             shard_dim_rows, &at.kv_b, l);
    t.linear(a + "o_proj.weight", weight_kind_linear, {H, nh * c.v_head_dim}, shard_dim_cols, &at.o, l);

    std::string m = p + "mlp.";
    if (lw.mlp) {
      t.mlp(m, H, c.intermediate_size, &*lw.mlp, l, -1, shard_group_tp);
      continue;
    }
    MoeWeights& moe = *lw.moe;
    t.linear(m + "gate.weight", weight_kind_router, {c.n_routed_experts, H}, shard_dim_replicated, &moe.router, l);
    if (c.topk_method == TopkMethod::noaux_tc)
      t.vector(m + "gate.e_score_correction_bias", c.n_routed_experts, &moe.score_bias, l);
    for (int e = 0; e < c.n_routed_experts; ++e)
      t.mlp(m + "experts." + std::to_string(e) + ".", H, c.moe_intermediate_size, &moe.experts[size_t(e)], l, e,
            shard_group_expert);
    if (moe.shared)
      t.mlp(m + "shared_experts.", H, c.moe_intermediate_size * c.n_shared_experts, &*moe.shared, l, -1,
            shard_group_all_ranks);
  }
  t.vector("model.norm.weight", H, &w.final_norm);
  if (!c.tie_word_embeddings)
    t.linear("lm_head.weight", weight_kind_linear, {c.vocab_size, H}, shard_dim_replicated, &w.lm_head);
  return std::move(t.out);
}

bool is_mtp_tensor(const ModelConfig& c, const std::string& name) {
  static const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return false;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot - prefix.size() > 6) return false;
  int layer = 0;
  for (size_t i = prefix.size(); i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    layer = layer * 10 + (name[i] - '0');
  }
  return layer >= c.n_layers && layer < c.n_layers + c.num_nextn_predict_layers;
}

}  // namespace dsi
