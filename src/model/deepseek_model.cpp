#include "model/deepseek_model.h"

#include "backend/ops.h"
#include "core/error.h"
#include "model/sharding.h"

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

// This step's rows of the workspace buffers.
struct DeepSeekModel::Rows {
  Tensor x, h, out, q_kv, q_a, q, kv, q_full, o_latent, o, gate_up, shared;
};

DeepSeekModel::DeepSeekModel(ModelConfig config, ModelWeights weights, Backend& backend, ParallelContext parallel)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      backend_(backend),
      rope_(make_rope_table(config_)),
      parallel_(std::move(parallel)) {
  if (!weights_.uploaded) fail("DeepSeekModel: the weights are not in backend memory (call upload_weights)");
  if (parallel_.world && (!parallel_.world_device || !parallel_.tp_device))
    fail("DeepSeekModel: a parallel layout without device collectives (ModelRunner makes them)");
  const auto& c = config_;
  mla_ = MlaShape{c.n_heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank,
                  float(c.attention_scale())};
  routing_ = routing_params(c);
  inv_freq_ = backend_.alloc(DType::f32, 1, int64_t(rope_.inv_freq.size()));
  backend_.copy_from_host(rope_.inv_freq.data(), inv_freq_.t);
  backend_.synchronize();
  if (parallel_.dp_size > 1 && c.n_routed_experts > 0) {
    // DP attention: tokens go to their experts' ranks and back (expert_exchange.h).
    if (!parallel_.world) fail("DeepSeekModel: data-parallel attention without a world communicator");
    n_local_experts_ = n_local_experts(parallel_, c);
    expert_begin_ = expert_begin(parallel_, c);
    exchange_ = std::make_unique<ExpertExchange>(backend_, c.n_routed_experts, parallel_.world_size, c.hidden_size,
                                                 c.moe_intermediate_size);
    no_counts_.assign(size_t(c.n_routed_experts), 0);
  } else if (parallel_.ep_size > 1 && c.n_routed_experts > 0) {
    n_local_experts_ = n_local_experts(parallel_, c);
    expert_begin_ = expert_begin(parallel_, c);
    // One more bucket than local experts: the choices other ranks compute (see routed_experts).
    local_counts_ = backend_.alloc(DType::i32, 1, n_local_experts_ + 1);
    local_offsets_ = backend_.alloc(DType::i32, 1, n_local_experts_ + 2);
  }
}

void DeepSeekModel::forward(Workspace& ws, const KvCacheView& cache, std::span<float> logits,
                            std::optional<uint64_t> graph_key) {
  const int64_t vocab = config_.vocab_size, n_out = ws.step.n_logit_rows();
  const int64_t n_copy = int64_t(logits.size()) / vocab;
  if (int64_t(logits.size()) % vocab != 0 || n_copy > n_out)
    fail("forward: logits buffer holds {} floats, expected at most {} rows x vocab {}", logits.size(), n_out, vocab);
  if (graph_key && recordable()) backend_.run_recorded(*graph_key, [&] { forward_device(ws, cache); });
  else forward_device(ws, cache);
  if (n_copy > 0) backend_.copy_to_host(ws.logits.t.slice_rows(0, n_copy), logits.data());
}

void DeepSeekModel::forward_device(Workspace& ws, const KvCacheView& cache) {
  const auto& c = config_;
  const StepContext& ctx = ws.step;
  const int64_t n = ctx.n_tokens(), n_out = ctx.n_logit_rows();
  auto& be = backend_;
  const float eps = float(c.rms_norm_eps);
  Rows s;
  s.x = ws.x.t.slice_rows(0, n);
  s.h = ws.h.t.slice_rows(0, n);
  s.out = ws.out.t.slice_rows(0, n);
  s.q_kv = ws.q_kv.t.slice_rows(0, n);
  if (c.q_lora_rank) s.q_a = ws.q_a.t.slice_rows(0, n);
  s.q = ws.q.t.slice_rows(0, n);
  s.kv = ws.kv.t.slice_rows(0, n);
  s.q_full = ws.q_full.t.slice_rows(0, n);
  s.o_latent = ws.o_latent.t.slice_rows(0, n);
  s.o = ws.o.t.slice_rows(0, n);
  s.gate_up = ws.gate_up.t.slice_rows(0, n);
  if (c.n_routed_experts > 0) s.shared = ws.shared.t.slice_rows(0, n);

  ops::embedding(be, weights_.embed, ctx, s.x);
  dump(-1, "embed", s.x);
  ops::rms_norm(be, s.x, weights_.layers[0].input_norm, eps, s.h);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = weights_.layers[size_t(l)];
    dump(l, "attn_norm", s.h);
    attention(l, ctx, cache, s);
    // Each residual add is fused with the norm that follows it (one kernel on CUDA).
    ops::add_rms_norm(be, s.x, s.out, lw.post_norm, eps, s.h);
    dump(l, "attn_residual", s.x);
    dump(l, "ffn_norm", s.h);
    feed_forward(l, s, ws);
    dump(l, "ffn_out", s.out);
    if (l + 1 < c.n_layers) ops::add_rms_norm(be, s.x, s.out, weights_.layers[size_t(l) + 1].input_norm, eps, s.h);
    else ops::add(be, s.x, s.out);
    dump(l, "layer_out", s.x);
  }

  // Only the rows whose logits are wanted go through the final norm and lm_head.
  if (n_out == 0) return;
  Tensor last = ws.last.t.slice_rows(0, n_out), out = ws.logits.t.slice_rows(0, n_out);
  ops::gather_rows(be, s.x, ctx.logit_rows, last);
  ops::rms_norm(be, last, weights_.final_norm, eps, last);
  dump(-1, "final_norm", last);
  ops::linear(be, last, weights_.lm_head, out);
  dump(-1, "logits", out);
}

void DeepSeekModel::attention(int layer, const StepContext& ctx, const KvCacheView& cache, const Rows& s) {
  const auto& c = config_;
  const auto& w = weights_.layers[size_t(layer)].attn;
  auto& be = backend_;
  const float eps = float(c.rms_norm_eps);

  // The query's first product and kv_a share their input: one product where they are stacked.
  if (w.q_kv_a) ops::linear(be, s.h, *w.q_kv_a, s.q_kv);
  if (c.q_lora_rank) {
    if (!w.q_kv_a) ops::linear(be, s.h, *w.q_a, s.q_a);
    ops::rms_norm(be, s.q_a, w.q_a_norm, eps, s.q_a);
    dump(layer, "q_a_norm", s.q_a);
    ops::linear(be, s.q_a, *w.q_b, s.q);
  } else if (!w.q_kv_a) {
    ops::linear(be, s.h, *w.q_proj, s.q);
  }
  dump(layer, "q", s.q);
  // The latent c is normalised in place; the rotary key k_pe follows it in the same row,
  // which is exactly the cache row layout.
  if (!w.q_kv_a) ops::linear(be, s.h, w.kv_a, s.kv);
  const MlaRopeNorm prep{w.kv_a_norm, eps,
                         {c.n_heads, c.qk_head_dim(), c.qk_nope_head_dim, inv_freq_.t, rope_.attention_factor},
                         {1, c.kv_cache_dim(), c.kv_lora_rank, inv_freq_.t, rope_.attention_factor}};
  if (dump_ && dump_->wants(layer, "kv")) {
    // The normed latent before its rotation exists only between the separate ops.
    Tensor latent = s.kv.slice_cols(0, c.kv_lora_rank);
    ops::rms_norm(be, latent, w.kv_a_norm, eps, latent);
    dump(layer, "kv", s.kv);
    ops::rope(be, s.q, prep.q_rope, ctx);
    ops::rope(be, s.kv, prep.kv_rope, ctx);
    ops::kv_cache_write(be, cache, layer, s.kv, ctx);
  } else {
    ops::mla_rope_norm_cache(be, s.q, s.kv, prep, cache, layer, ctx);
  }
  dump(layer, "q_rope", s.q);
  dump(layer, "kv_rope", s.kv);

  ops::mla_absorb_query(be, s.q, w.kv_b, mla_, s.q_full);
  dump(layer, "q_full", s.q_full);
  ops::mla_attention(be, s.q_full, cache, layer, ctx, mla_, s.o_latent);
  dump(layer, "o_latent", s.o_latent);
  ops::mla_expand_output(be, s.o_latent, w.kv_b, mla_, s.o);
  dump(layer, "o", s.o);
  ops::linear(be, s.o, w.o, s.out);
  // Row-parallel o_proj: each TP rank holds its heads' share of the sum.
  all_reduce(parallel_.tp_device.get(), s.out);
  dump(layer, "attn_out", s.out);
}

void DeepSeekModel::feed_forward(int layer, const Rows& s, Workspace& ws) {
  const auto& lw = weights_.layers[size_t(layer)];
  auto& be = backend_;
  auto mlp = [&](const MlpWeights& m, Tensor out) {
    const int64_t width = m.gate.rows();
    Tensor gate = s.gate_up.slice_cols(0, width), up = s.gate_up.slice_cols(width, width);
    if (m.gate_up) {
      ops::linear(be, s.h, *m.gate_up, s.gate_up.slice_cols(0, 2 * width));
    } else {
      ops::linear(be, s.h, m.gate, gate);
      ops::linear(be, s.h, m.up, up);
    }
    ops::silu_mul(be, gate, up, gate);
    ops::linear(be, gate, m.down, out);
  };
  if (lw.mlp) {
    mlp(*lw.mlp, s.out);
    all_reduce(parallel_.tp_device.get(), s.out);  // row-parallel down_proj
    return;
  }
  // The shared experts first: their output joins the routed sum inside moe_combine.
  const auto& moe = *lw.moe;
  Tensor shared;
  if (moe.shared) {
    mlp(*moe.shared, s.shared);
    dump(layer, "shared_out", s.shared);
    shared = s.shared;
  }
  routed_experts(layer, s, ws, shared);
  // Every rank holds its experts' and its shared-expert slice's share: one sum over all ranks.
  // (Under DP attention the exchange brought every expert's output home, and the shared
  // experts are whole: nothing to sum.)
  if (!exchange_) all_reduce(parallel_.world_device.get(), s.out);
}

// The routed experts of every token. Under expert parallelism a rank computes only the
// choices of its own experts: the others go to one extra bucket, last, whose weight is zero
// and whose rows are zeroed, so moe_combine adds exactly nothing for them and sums the rest
// in increasing expert id as one process does; the all-reduce after the shared experts adds
// the ranks' shares. (All-to-all dispatch, sending each token only to the ranks of its
// experts, moves fewer bytes once attention is data-parallel: docs/design/parallel.md.)
void DeepSeekModel::routed_experts(int layer, const Rows& s, Workspace& ws, const Tensor& shared) {
  const auto& moe = *weights_.layers[size_t(layer)].moe;
  auto& be = backend_;
  const int64_t n = s.x.rows, m = n * config_.num_experts_per_tok;
  Tensor logits = ws.router_logits.t.slice_rows(0, n), ids = ws.expert_ids.t.slice_rows(0, n),
         weights = ws.expert_weights.t.slice_rows(0, n), row_map = ws.row_map.t.slice_rows(0, n),
         counts = ws.expert_counts.t.slice_rows(layer, 1), x_sorted = ws.x_sorted.t.slice_rows(0, m),
         y_sorted = ws.y_sorted.t.slice_rows(0, m);
  ops::linear(be, s.h, moe.router, logits);
  dump(layer, "router_logits", logits);
  ops::moe_route(be, logits, moe.score_bias, routing_, ids, weights, counts);
  dump(layer, "expert_ids", ids);
  dump(layer, "expert_weights", weights);
  Tensor route_counts = counts, offsets = ws.expert_offsets.t, group_offsets = ws.expert_offsets.t;
  if (exchange_) {
    // Sorted by global expert id, each owner's rows are contiguous: they go there and back.
    ops::moe_dispatch(be, s.h, ids, counts, x_sorted, offsets, row_map);
    dump(layer, "x_sorted", x_sorted);
    host_counts_.resize(size_t(config_.n_routed_experts));
    be.copy_to_host(counts, host_counts_.data());
    exchange_->run(*parallel_.world_device, moe.routed, x_sorted, host_counts_, y_sorted);
    dump(layer, "y_sorted", y_sorted);
    ops::moe_combine(be, y_sorted, row_map, ids, weights, shared, s.out);
    dump(layer, "moe_out", s.out);
    return;
  }
  int64_t n_elsewhere = 0;
  if (n_local_experts_ > 0) {
    const size_t nk = size_t(m);
    host_ids_.resize(nk);
    host_weights_.resize(nk);
    host_counts_.assign(size_t(n_local_experts_ + 1), 0);
    be.copy_to_host(ids, host_ids_.data());
    be.copy_to_host(weights, host_weights_.data());
    for (size_t i = 0; i < nk; ++i) {
      const int32_t local = host_ids_[i] - expert_begin_;
      if (local >= 0 && local < n_local_experts_) {
        host_ids_[i] = local;
      } else {
        host_ids_[i] = n_local_experts_;
        host_weights_[i] = 0;
      }
      ++host_counts_[size_t(host_ids_[i])];
    }
    n_elsewhere = host_counts_.back();
    be.copy_from_host(host_ids_.data(), ids);
    be.copy_from_host(host_weights_.data(), weights);
    be.copy_from_host(host_counts_.data(), local_counts_.t);
    route_counts = local_counts_.t;
    offsets = local_offsets_.t;
    group_offsets = local_offsets_.t.slice_cols(0, n_local_experts_ + 1);
  }
  ops::moe_dispatch(be, s.h, ids, route_counts, x_sorted, offsets, row_map);
  dump(layer, "x_sorted", x_sorted);
  ops::moe_grouped_mlp(be, x_sorted, group_offsets, moe.routed, ws.moe_gate.t.slice_rows(0, m),
                       ws.moe_up.t.slice_rows(0, m), y_sorted);
  if (n_elsewhere > 0) {
    Tensor elsewhere = y_sorted.slice_rows(m - n_elsewhere, n_elsewhere);
    const size_t bytes = size_t(elsewhere.numel()) * dtype_size(elsewhere.dtype);
    if (zeros_.size() < bytes) zeros_.assign(bytes, std::byte{0});
    be.copy_from_host(zeros_.data(), elsewhere);
  }
  dump(layer, "y_sorted", y_sorted);
  ops::moe_combine(be, y_sorted, row_map, ids, weights, shared, s.out);
  dump(layer, "moe_out", s.out);
}

void DeepSeekModel::idle_forward(Workspace& ws) {
  if (!exchange_) return;  // no collective in a step without tokens but the expert exchange
  const Tensor none = ws.x_sorted.t.slice_rows(0, 0);
  for (int l = 0; l < config_.n_layers; ++l)
    if (const auto& moe = weights_.layers[size_t(l)].moe)
      exchange_->run(*parallel_.world_device, moe->routed, none, no_counts_, none);
}

}  // namespace dsi
