#include "model/weight_map.h"

#include <optional>

#include "core/error.h"

namespace dsi {

namespace {

class TableBuilder {
 public:
  explicit TableBuilder(bool bind) : bind_(bind) {}

  // A replicated parameter (shard_dim_replicated) has group none; a split one the TP group
  // unless said otherwise. Linears are stored in the checkpoint's weight dtype unless said
  // otherwise; embeddings and the router in bf16.
  void linear(std::string name, WeightKind kind, std::vector<int64_t> shape, ShardDim shard, Weight* dst,
              int layer = -1, int expert = -1, ShardGroup group = ShardGroup::shard_group_tp,
              std::optional<StoredDtype> stored = std::nullopt) {
    if (shard == ShardDim::shard_dim_replicated) group = ShardGroup::shard_group_none;
    if (!stored)
      stored = kind == WeightKind::weight_kind_linear ? StoredDtype::stored_weight_dtype : StoredDtype::stored_bf16;
    out.push_back({std::move(name), kind, std::move(shape), shard, group, layer, expert, bind_ ? dst : nullptr,
                   nullptr, *stored});
  }
  void vector(std::string name, int64_t n, Tensor* dst, int layer = -1,
              StoredDtype stored = StoredDtype::stored_bf16) {
    out.push_back({std::move(name), WeightKind::weight_kind_vector, {n}, ShardDim::shard_dim_replicated,
                   ShardGroup::shard_group_none, layer, -1, nullptr, bind_ ? dst : nullptr, stored});
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

// Lays out one decoder layer: dense MLP or MoE, q_a/q_b or q_proj.
void lay_out_layer(const ModelConfig& c, bool moe, LayerWeights& lw) {
  if (c.q_lora_rank) {
    lw.attn.q_a.emplace();
    lw.attn.q_b.emplace();
  } else {
    lw.attn.q_proj.emplace();
  }
  if (!moe) {
    lw.mlp.emplace();
    return;
  }
  lw.moe.emplace().experts.resize(size_t(c.n_routed_experts));
  if (c.n_shared_experts > 0) lw.moe->shared.emplace();
}

// Decoder layer `l` (hub prefix model.layers.<l>.): MLA attention, its norms, and the dense
// MLP or the MoE (router, routed experts, shared experts as one MLP) as `lw` is laid out.
void add_layer(TableBuilder& t, const ModelConfig& c, int l, LayerWeights& lw) {
  using enum WeightKind;
  using enum ShardDim;
  using enum ShardGroup;
  const int64_t H = c.hidden_size, nh = c.n_heads;
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
    return;
  }
  MoeWeights& moe = *lw.moe;
  t.linear(m + "gate.weight", weight_kind_router, {c.n_routed_experts, H}, shard_dim_replicated, &moe.router, l);
  // noaux_tc adds a per-expert bias used only to choose experts; the checkpoints store it in float32.
  if (c.topk_method == TopkMethod::noaux_tc)
    t.vector(m + "gate.e_score_correction_bias", c.n_routed_experts, &moe.score_bias, l, StoredDtype::stored_f32);
  for (int e = 0; e < c.n_routed_experts; ++e)
    t.mlp(m + "experts." + std::to_string(e) + ".", H, c.moe_intermediate_size, &moe.experts[size_t(e)], l, e,
          shard_group_expert);
  if (moe.shared)
    t.mlp(m + "shared_experts.", H, c.moe_intermediate_size * c.n_shared_experts, &*moe.shared, l, -1,
          shard_group_all_ranks);
}

}  // namespace

// Gives every optional part of `w` the shape the config asks for.
void lay_out(const ModelConfig& c, ModelWeights& w) {
  w.layers.assign(size_t(c.n_layers), LayerWeights{});
  for (int l = 0; l < c.n_layers; ++l) lay_out_layer(c, c.is_moe_layer(l), w.layers[size_t(l)]);
}

std::vector<WeightSpec> weight_table(const ModelConfig& c, ModelWeights* bind) {
  using enum WeightKind;
  using enum ShardDim;
  using enum ShardGroup;
  const int64_t H = c.hidden_size;
  ModelWeights scratch;  // destinations when the caller only wants the table
  ModelWeights& w = bind ? *bind : scratch;
  if (w.layers.empty()) lay_out(c, w);
  if (int(w.layers.size()) != c.n_layers) fail("weight_table: weights laid out for another config");
  TableBuilder t(bind != nullptr);

  t.linear("model.embed_tokens.weight", weight_kind_embedding, {c.vocab_size, H}, shard_dim_rows, &w.embed, -1, -1,
           shard_group_vocab);
  for (int l = 0; l < c.n_layers; ++l) add_layer(t, c, l, w.layers[size_t(l)]);
  t.vector("model.norm.weight", H, &w.final_norm);
  // lm_head stays bf16 in the FP8 checkpoints.
  if (!c.tie_word_embeddings)
    t.linear("lm_head.weight", weight_kind_linear, {c.vocab_size, H}, shard_dim_rows, &w.lm_head, -1, -1,
             shard_group_vocab, StoredDtype::stored_bf16);
  return std::move(t.out);
}

std::vector<WeightSpec> mtp_weight_table(const ModelConfig& c) {
  using enum WeightKind;
  using enum ShardDim;
  using enum ShardGroup;
  const int64_t H = c.hidden_size;
  TableBuilder t(false);
  for (int i = 0; i < c.num_nextn_predict_layers; ++i) {
    const int l = c.n_layers + i;
    LayerWeights lw;
    lay_out_layer(c, c.n_routed_experts > 0, lw);
    add_layer(t, c, l, lw);
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.vector(p + "enorm.weight", H, nullptr, l);
    t.vector(p + "hnorm.weight", H, nullptr, l);
    // Not quantised in the FP8 checkpoints.
    t.linear(p + "eh_proj.weight", weight_kind_linear, {H, 2 * H}, shard_dim_replicated, nullptr, l, -1,
             shard_group_none, StoredDtype::stored_bf16);
    t.linear(p + "embed_tokens.weight", weight_kind_embedding, {c.vocab_size, H}, shard_dim_rows, nullptr, l, -1,
             shard_group_vocab);
    t.vector(p + "shared_head.norm.weight", H, nullptr, l);
    t.linear(p + "shared_head.head.weight", weight_kind_linear, {c.vocab_size, H}, shard_dim_rows, nullptr, l, -1,
             shard_group_vocab, StoredDtype::stored_bf16);
  }
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
