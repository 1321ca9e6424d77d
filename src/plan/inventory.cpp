#include "plan/inventory.h"

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

WeightTensor linear(std::string_view name, ParamGroup g, int64_t out, int64_t in, TpSplit split, int64_t n = 1) {
  return {name, g, out, in, n, true, false, split};
}

WeightTensor vec(std::string_view name, ParamGroup g, int64_t n, bool fp32 = false) {
  return {name, g, n, 1, 1, false, fp32, TpSplit::replicated};
}

// MLA attention and the two layer norms (MATH.md "Attention (MLA)").
void add_attention(const ModelConfig& c, std::vector<WeightTensor>& t) {
  const int64_t h = c.hidden_size, nh = c.n_heads;
  const auto A = ParamGroup::attention;
  if (c.q_lora_rank) {
    t.push_back(linear("self_attn.q_a_proj.weight", A, *c.q_lora_rank, h, TpSplit::replicated));
    t.push_back(vec("self_attn.q_a_layernorm.weight", ParamGroup::norms, *c.q_lora_rank));
    t.push_back(linear("self_attn.q_b_proj.weight", A, nh * c.qk_head_dim(), *c.q_lora_rank, TpSplit::rows));
  } else {
    t.push_back(linear("self_attn.q_proj.weight", A, nh * c.qk_head_dim(), h, TpSplit::rows));
  }
  t.push_back(linear("self_attn.kv_a_proj_with_mqa.weight", A, c.kv_cache_dim(), h, TpSplit::replicated));
  t.push_back(vec("self_attn.kv_a_layernorm.weight", ParamGroup::norms, c.kv_lora_rank));
  t.push_back(linear("self_attn.kv_b_proj.weight", A, nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank,
                     TpSplit::rows));
  t.push_back(linear("self_attn.o_proj.weight", A, h, nh * c.v_head_dim, TpSplit::cols));
  t.push_back(vec("input_layernorm.weight", ParamGroup::norms, h));
  t.push_back(vec("post_attention_layernorm.weight", ParamGroup::norms, h));
}

void add_mlp(std::string_view gate, std::string_view up, std::string_view down, ParamGroup g, int64_t h,
             int64_t width, int64_t n, std::vector<WeightTensor>& t) {
  t.push_back(linear(gate, g, width, h, TpSplit::rows, n));
  t.push_back(linear(up, g, width, h, TpSplit::rows, n));
  t.push_back(linear(down, g, h, width, TpSplit::cols, n));
}

// MoE FFN (MATH.md "MoE"): router, routed experts, shared experts as one MLP of width
// moe_intermediate_size * n_shared_experts.
void add_moe(const ModelConfig& c, std::vector<WeightTensor>& t) {
  const int64_t h = c.hidden_size;
  t.push_back({"mlp.gate.weight", ParamGroup::router, c.n_routed_experts, h, 1, false, false, TpSplit::replicated});
  // noaux_tc adds a per-expert bias used only to choose experts; the checkpoints store it in float32.
  if (c.topk_method == TopkMethod::noaux_tc)
    t.push_back(vec("mlp.gate.e_score_correction_bias", ParamGroup::router, c.n_routed_experts, true));
  add_mlp("mlp.experts.{e}.gate_proj.weight", "mlp.experts.{e}.up_proj.weight", "mlp.experts.{e}.down_proj.weight",
          ParamGroup::routed_experts, h, c.moe_intermediate_size, c.n_routed_experts, t);
  if (c.n_shared_experts > 0)
    add_mlp("mlp.shared_experts.gate_proj.weight", "mlp.shared_experts.up_proj.weight",
            "mlp.shared_experts.down_proj.weight", ParamGroup::shared_experts, h,
            c.moe_intermediate_size * c.n_shared_experts, 1, t);
}

LayerInventory decoder_layer(const ModelConfig& c, bool moe) {
  LayerInventory l;
  l.moe = moe;
  add_attention(c, l.tensors);
  if (moe) add_moe(c, l.tensors);
  else add_mlp("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", ParamGroup::dense_mlp,
               c.hidden_size, c.intermediate_size, 1, l.tensors);
  return l;
}

}  // namespace

WeightInventory WeightInventory::from_config(const ModelConfig& c) {
  const int64_t h = c.hidden_size, v = c.vocab_size;
  WeightInventory inv;
  inv.embedding.push_back({"model.embed_tokens.weight", ParamGroup::embedding, v, h, 1, false, false, TpSplit::rows});
  for (int i = 0; i < c.n_layers; ++i) inv.layers.push_back(decoder_layer(c, c.is_moe_layer(i)));
  inv.head.push_back(vec("model.norm.weight", ParamGroup::norms, h));
  if (!c.tie_word_embeddings)
    inv.head.push_back({"lm_head.weight", ParamGroup::lm_head, v, h, 1, false, false, TpSplit::rows});
  // MTP modules (MATH.md "MTP layer"): the decoder layer is an MoE layer when the model has
  // experts. eh_proj is not quantised in the FP8 checkpoints.
  for (int i = 0; i < c.num_nextn_predict_layers; ++i) {
    LayerInventory m = decoder_layer(c, c.n_routed_experts > 0);
    m.tensors.push_back(vec("enorm.weight", ParamGroup::norms, h));
    m.tensors.push_back(vec("hnorm.weight", ParamGroup::norms, h));
    m.tensors.push_back({"eh_proj.weight", ParamGroup::attention, h, 2 * h, 1, false, false, TpSplit::replicated});
    m.tensors.push_back({"embed_tokens.weight", ParamGroup::embedding, v, h, 1, false, false, TpSplit::rows});
    m.tensors.push_back(vec("shared_head.norm.weight", ParamGroup::norms, h));
    m.tensors.push_back({"shared_head.head.weight", ParamGroup::lm_head, v, h, 1, false, false, TpSplit::rows});
    inv.mtp.push_back(std::move(m));
  }
  return inv;
}

}  // namespace dsi::plan
