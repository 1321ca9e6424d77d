#pragma once
// The shared op layer: what the model calls. Each function checks the shapes and dtypes of its
// arguments once, for every backend, with an error naming the op and the operand, then calls
// the backend's op (which trusts them). Shapes are [rows, cols]; "act" is the backend's
// activation dtype (f32 on the CPU, bf16 or f32 on a GPU); GEMMs accumulate in f32.
// Per-step values (ids, slots, block tables) were validated by StepContext::begin and are not
// checked again here.
#include "backend/backend.h"
#include "backend/step_context.h"

namespace dsi::ops {

// out[i] = table[token_ids[i]] in act. table: [vocab, hidden] (not FP8); out: act [n_tokens, hidden]
void embedding(Backend& be, const Weight& table, const StepContext& ctx, Tensor out);

// out = weight * x / sqrt(mean(x^2) + eps) per row, computed in f32.
// x, out: act [n, d] (out may alias x); weight: f32 [1, d]
void rms_norm(Backend& be, const Tensor& x, const Tensor& weight, float eps, Tensor out);

// The residual add and the next norm in one op: x += y, then out = rms_norm(x) (the norm reads
// the rounded sum, so it equals add then rms_norm). x, y, out: act [n, d], out not aliasing x or y.
void add_rms_norm(Backend& be, Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out);

// out = x W^T. x: act [n, in]; w: [out, in] (f32, bf16, f16, or FP8 with block scales);
// out: act or f32 [n, out], not overlapping x
void linear(Backend& be, const Tensor& x, const Weight& w, Tensor out);

// In place on x: act [n_tokens, *], row i rotated by ctx.positions[i] (RopeParams says where).
void rope(Backend& be, Tensor x, const RopeParams& rope, const StepContext& ctx);

// out = silu(gate) * up. gate, up, out: act [n, d]; out may alias gate.
void silu_mul(Backend& be, const Tensor& gate, const Tensor& up, Tensor out);

// x += y. x, y: act [n, d]
void add(Backend& be, Tensor x, const Tensor& y);

// out[i] = x[rows[i]]. x: act [n, d]; rows: i32 [m, 1], values in [0, n); out: act [m, d]
void gather_rows(Backend& be, const Tensor& x, const Tensor& rows, Tensor out);

// Writes the new tokens' latent rows to their ctx.kv_slots of `layer`, converted to the
// cache's dtype. kv: act [n_tokens, kv_dim]
void kv_cache_write(Backend& be, const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx);

// What attention does to q and kv between their products and the absorbed query, as one op:
// kv's latent (its first p.kv_norm.numel() columns) rms-normed in place, rope on q and on kv's
// rotary key, then kv written to its ctx.kv_slots of `layer`. Equal to rms_norm, rope, rope,
// kv_cache_write in that order; CUDA does it in one kernel. q, kv: act [n_tokens, *], sharing no
// element (they may be column ranges of the same rows).
void mla_rope_norm_cache(Backend& be, Tensor q, Tensor kv, const MlaRopeNorm& p, const KvCacheView& cache, int layer,
                         const StepContext& ctx);

// Absorbs W_UK into the query: q_full[:, h] = [W_UK_h^T q_nope_h, q_pe_h].
// q: act [n, n_heads * (dn + dr)] (rope applied); kv_b: [n_heads * (dn + dv), r];
// q_full: act [n, n_heads * (r + dr)]
void mla_absorb_query(Backend& be, const Tensor& q, const Weight& kv_b, const MlaShape& shape, Tensor q_full);

// Causal attention of every batch token over its sequence's cached rows in latent space:
// o_latent[:, h] = sum_j softmax_j(scale * q_full_h . row_j) * row_j[:r], j over the
// positions [0, n_cached + i] of the token's sequence (ctx block tables).
// q_full: act [n_tokens, n_heads * (r + dr)]; o_latent: act [n_tokens, n_heads * r]
void mla_attention(Backend& be, const Tensor& q_full, const KvCacheView& cache, int layer, const StepContext& ctx,
                   const MlaShape& shape, Tensor o_latent);

// o[:, h] = W_UV_h o_latent_h. o_latent: act [n, n_heads * r]; o: act [n, n_heads * dv]
void mla_expand_output(Backend& be, const Tensor& o_latent, const Weight& kv_b, const MlaShape& shape, Tensor o);

// ---- MoE in four ops (n tokens, k = top_k, E = n_experts)

// Chooses top_k experts per token (MATH.md "MoE") and counts the tokens of each expert.
// logits: f32 [n, E]; score_bias: f32 [1, E] (read only with use_score_bias);
// expert_ids: i32 [n, k], best first; expert_weights: f32 [n, k]; expert_counts: i32 [1, E]
// (stays in backend memory; read it after the step for load metrics)
void moe_route(Backend& be, const Tensor& logits, const Tensor& score_bias, const RoutingParams& params,
               Tensor expert_ids, Tensor expert_weights, Tensor expert_counts);

// Permutes token rows expert-major: expert e owns rows [expert_offsets[e], expert_offsets[e+1])
// of x_sorted, its tokens in batch order (the seam of expert parallelism's all-to-all).
// x: act [n, hidden]; expert_ids: i32 [n, k]; expert_counts: i32 [1, E] (from moe_route);
// x_sorted: act [n * k, hidden]; expert_offsets: i32 [1, E + 1]; row_map: i32 [n, k], the
// x_sorted row of each (token, choice)
void moe_dispatch(Backend& be, const Tensor& x, const Tensor& expert_ids, const Tensor& expert_counts,
                  Tensor x_sorted, Tensor expert_offsets, Tensor row_map);

// Every routed expert's MLP over its rows, one grouped call for all experts:
// y_sorted[rows of e] = down_e(silu(gate_e x) * up_e x).
// x_sorted: act [m, hidden] (m = n * k); expert_offsets: i32 [1, E + 1]; gate, up: act
// [m, moe_inter] scratch (gate ends as the gated activation); y_sorted: act [m, hidden]
void moe_grouped_mlp(Backend& be, const Tensor& x_sorted, const Tensor& expert_offsets,
                     const ExpertMlpWeights& experts, Tensor gate, Tensor up, Tensor y_sorted);

// out[t] = sum over the token's k choices, in increasing expert id (an order that does not
// depend on the batch), of expert_weights[t, j] * y_sorted[row_map[t, j]], then, where
// shared has data, plus shared[t] (the shared experts' output; the sum is rounded to the
// activation dtype first, as a separate add would see it).
// y_sorted: act [n * k, hidden]; row_map, expert_ids: i32 [n, k]; expert_weights: f32 [n, k];
// shared: act [n, hidden] or empty; out: act [n, hidden], not overlapping y_sorted or shared
void moe_combine(Backend& be, const Tensor& y_sorted, const Tensor& row_map, const Tensor& expert_ids,
                 const Tensor& expert_weights, const Tensor& shared, Tensor out);

// Tokens for rows [0, rows.size()) of logits on the backend's device sampler (Backend::sample).
// logits: f32 [>= rows.size(), vocab], scratch; results: one per row; each row's penalty range
// [penalty_begin, penalty_end) inside `penalties`.
void sample(Backend& be, const Tensor& logits, std::span<const sampling::SamplingRow> rows,
            std::span<const sampling::SamplingPenalty> penalties, std::span<sampling::SamplingResult> results);

}  // namespace dsi::ops
