#include "model/deepseek_model.h"

#include "core/error.h"

namespace dsi {

namespace {

RoutingParams routing_params(const ModelConfig& c) {
  RoutingParams p{};
  p.n_experts = c.n_routed_experts;
  p.top_k = c.num_experts_per_tok;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.score = c.scoring_func == ScoringFunc::softmax ? RoutingScore::routing_score_softmax
                                                   : RoutingScore::routing_score_sigmoid;
  switch (c.topk_method) {
    case TopkMethod::greedy: p.group_score = RoutingGroupScore::routing_group_none; break;
    case TopkMethod::group_limited_greedy: p.group_score = RoutingGroupScore::routing_group_max; break;
    case TopkMethod::noaux_tc: p.group_score = RoutingGroupScore::routing_group_top2_sum; break;
  }
  p.use_score_bias = c.topk_method == TopkMethod::noaux_tc;
  // Renormalisation belongs to sigmoid scoring (MATH.md "MoE"); softmax weights are used as
  // they are, which is also what the reference does whatever norm_topk_prob says.
  p.normalize = c.norm_topk_prob && c.scoring_func == ScoringFunc::sigmoid;
  p.scaling = float(c.routed_scaling_factor);
  return p;
}

}  // namespace

// Activations of one forward pass, reused by every layer.
struct DeepSeekModel::Scratch {
  Buffer x;       // [n, hidden] residual stream
  Buffer h;       // [n, hidden] normalised input of a sub-layer
  Buffer out;     // [n, hidden] output of a sub-layer
  Buffer q_a;     // [n, q_lora_rank]
  Buffer q;       // [n, n_heads * (dn + dr)]
  Buffer kv;      // [n, r + dr]
  Buffer q_full;  // [n, n_heads * (r + dr)]
  Buffer o_lat;   // [n, n_heads * r]
  Buffer o;       // [n, n_heads * dv]
  Buffer gate;    // [n, intermediate_size]
  Buffer up;      // [n, intermediate_size]
  Buffer router_logits;  // [n, n_routed_experts]
  Buffer expert_ids;     // i32 [n, top_k]
  Buffer expert_weights;  // [n, top_k]
  Buffer shared;          // [n, hidden]
};

DeepSeekModel::DeepSeekModel(ModelConfig config, ModelWeights weights, Backend& backend)
    : config_(std::move(config)), weights_(std::move(weights)), backend_(backend), rope_(make_rope_table(config_)) {
  const auto& c = config_;
  mla_ = MlaShape{c.n_heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank,
                  float(c.attention_scale())};
  routing_ = routing_params(c);
}

void DeepSeekModel::forward(const ForwardBatch& batch, const KvCacheView& cache, std::span<float> logits) {
  const auto& c = config_;
  const int64_t n = batch.n_tokens();
  if (n == 0) fail("forward: empty batch");
  if (int64_t(logits.size()) != int64_t(batch.logit_rows.size()) * c.vocab_size)
    fail("forward: logits buffer holds {} floats, expected {} rows x vocab {}", logits.size(),
         batch.logit_rows.size(), c.vocab_size);
  for (int32_t id : batch.token_ids)
    if (id < 0 || id >= c.vocab_size) fail("token id {} is outside the vocabulary [0, {})", id, c.vocab_size);

  auto& be = backend_;
  auto f32 = [&](int64_t cols) { return be.alloc(DType::f32, n, cols); };
  const int64_t inter = std::max(c.intermediate_size, c.moe_intermediate_size * std::max(c.n_shared_experts, 1));
  Scratch s;
  s.x = f32(c.hidden_size);
  s.h = f32(c.hidden_size);
  s.out = f32(c.hidden_size);
  if (c.q_lora_rank) s.q_a = f32(*c.q_lora_rank);
  s.q = f32(c.n_heads * c.qk_head_dim());
  s.kv = f32(c.kv_cache_dim());
  s.q_full = f32(c.n_heads * mla_.latent_dim());
  s.o_lat = f32(c.n_heads * c.kv_lora_rank);
  s.o = f32(c.n_heads * c.v_head_dim);
  s.gate = f32(inter);
  s.up = f32(inter);
  if (c.n_routed_experts > 0) {
    s.router_logits = f32(c.n_routed_experts);
    s.expert_ids = be.alloc(DType::i32, n, c.num_experts_per_tok);
    s.expert_weights = f32(c.num_experts_per_tok);
    s.shared = f32(c.hidden_size);
  }

  be.embedding(weights_.embed, batch.token_ids, s.x.t);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = weights_.layers[size_t(l)];
    be.rms_norm(s.x.t, lw.input_norm, float(c.rms_norm_eps), s.h.t);
    attention(l, batch, cache, s);
    be.add(s.x.t, s.out.t);
    be.rms_norm(s.x.t, lw.post_norm, float(c.rms_norm_eps), s.h.t);
    feed_forward(l, s);
    be.add(s.x.t, s.out.t);
  }

  // Only the rows whose logits are wanted go through the final norm and lm_head.
  const int64_t n_out = int64_t(batch.logit_rows.size());
  if (n_out == 0) return;
  Buffer last = be.alloc(DType::f32, n_out, c.hidden_size);
  for (int64_t i = 0; i < n_out; ++i) {
    int32_t row = batch.logit_rows[size_t(i)];
    if (row < 0 || row >= n) fail("forward: logit row {} outside the batch of {}", row, n);
    be.rms_norm(s.x.t.slice_rows(row, 1), weights_.final_norm, float(c.rms_norm_eps), last.t.slice_rows(i, 1));
  }
  Buffer out = be.alloc(DType::f32, n_out, c.vocab_size);
  be.linear(last.t, weights_.lm_head, out.t);
  be.to_host(out.t, logits.data());
}

void DeepSeekModel::attention(int layer, const ForwardBatch& batch, const KvCacheView& cache, Scratch& s) {
  const auto& c = config_;
  const auto& w = weights_.layers[size_t(layer)].attn;
  auto& be = backend_;
  const float eps = float(c.rms_norm_eps);

  if (c.q_lora_rank) {
    be.linear(s.h.t, *w.q_a, s.q_a.t);
    be.rms_norm(s.q_a.t, w.q_a_norm, eps, s.q_a.t);
    be.linear(s.q_a.t, *w.q_b, s.q.t);
  } else {
    be.linear(s.h.t, *w.q_proj, s.q.t);
  }
  // The latent c is normalised in place; the rotary key k_pe follows it in the same row,
  // which is exactly the cache row layout.
  be.linear(s.h.t, w.kv_a, s.kv.t);
  Tensor latent = s.kv.t.slice_cols(0, c.kv_lora_rank);
  be.rms_norm(latent, w.kv_a_norm, eps, latent);
  be.rope(s.q.t, c.n_heads, c.qk_head_dim(), c.qk_nope_head_dim, batch.positions, rope_.inv_freq,
          rope_.attention_factor);
  be.rope(s.kv.t, 1, c.kv_cache_dim(), c.kv_lora_rank, batch.positions, rope_.inv_freq, rope_.attention_factor);
  be.kv_cache_write(cache, layer, s.kv.t, batch.kv_slots);

  be.mla_absorb_query(s.q.t, w.kv_b, mla_, s.q_full.t);
  be.mla_attention(s.q_full.t, cache, layer, batch, mla_, s.o_lat.t);
  be.mla_expand_output(s.o_lat.t, w.kv_b, mla_, s.o.t);
  be.linear(s.o.t, w.o, s.out.t);
}

void DeepSeekModel::feed_forward(int layer, Scratch& s) {
  const auto& lw = weights_.layers[size_t(layer)];
  auto& be = backend_;
  auto mlp = [&](const MlpWeights& m, Tensor out) {
    const int64_t width = m.gate.rows();
    Tensor gate = s.gate.t.slice_cols(0, width), up = s.up.t.slice_cols(0, width);
    be.linear(s.h.t, m.gate, gate);
    be.linear(s.h.t, m.up, up);
    be.silu_mul(gate, up, gate);
    be.linear(gate, m.down, out);
  };
  if (lw.mlp) {
    mlp(*lw.mlp, s.out.t);
    return;
  }
  const auto& moe = *lw.moe;
  be.linear(s.h.t, moe.router, s.router_logits.t);
  be.moe_route(s.router_logits.t, moe.score_bias, routing_, s.expert_ids.t, s.expert_weights.t);
  be.moe_experts(s.h.t, s.expert_ids.t, s.expert_weights.t, moe.experts, s.out.t);
  if (moe.shared) {
    mlp(*moe.shared, s.shared.t);
    be.add(s.out.t, s.shared.t);
  }
}

}  // namespace dsi
