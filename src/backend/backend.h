#pragma once
// The small op interface the model is written against, once, for every backend. The CPU
// backend is the float32 reference; a CUDA backend implements the same ops on device memory.
// Ops take views (Tensor, Weight) whose memory the backend owns; shapes are in the comments.
// An op may be given its output aliased to an input only where its comment says so.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsi {

// Memory allocated by a backend; the view stays valid while any copy of the Buffer lives.
struct Buffer {
  Tensor t;
  std::shared_ptr<void> owner;
};

struct MlpWeights {
  Weight gate;  // [inter, hidden]
  Weight up;    // [inter, hidden]
  Weight down;  // [hidden, inter]
};

// One sequence's share of a forward batch. Its new tokens are rows [first_row, first_row +
// n_tokens) of the batch, at positions [n_cached, n_cached + n_tokens).
struct BatchSequence {
  int32_t first_row = 0;
  int32_t n_tokens = 0;
  int32_t n_cached = 0;               // tokens of this sequence already in the KV cache
  std::vector<int32_t> block_table;  // KV blocks holding positions [0, n_cached + n_tokens)
};

// Everything a forward pass needs besides the weights: the flattened new tokens of every
// sequence in the step, and where their keys go.
struct ForwardBatch {
  std::vector<int32_t> token_ids;  // [n_tokens]
  std::vector<int32_t> positions;  // [n_tokens]
  std::vector<int64_t> kv_slots;   // [n_tokens] cache row of each token: block * block_size + offset
  std::vector<BatchSequence> sequences;
  std::vector<int32_t> logit_rows;  // batch rows whose logits the caller wants, in output order
  int64_t n_tokens() const { return int64_t(token_ids.size()); }
};

// The paged MLA cache of all layers: per token and layer one row of kv_dim = kv_lora_rank +
// qk_rope_head_dim values (the normalised latent c, then the roped shared key k_pe).
struct KvCacheView {
  Tensor pool;  // [n_layers * n_blocks * block_size, kv_dim], layer-major
  int n_layers = 0;
  int64_t n_blocks = 0;
  int block_size = 0;
  Tensor layer(int l) const { return pool.slice_rows(int64_t(l) * n_blocks * block_size, n_blocks * block_size); }
};

struct MlaShape {
  int n_heads;
  int64_t qk_nope_head_dim;  // dn
  int64_t qk_rope_head_dim;  // dr
  int64_t v_head_dim;        // dv
  int64_t kv_lora_rank;      // r
  float softmax_scale;
  int64_t q_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t latent_dim() const { return kv_lora_rank + qk_rope_head_dim; }  // = kv_dim
};

enum class RoutingScore { routing_score_softmax, routing_score_sigmoid };
enum class RoutingGroupScore {
  routing_group_none,     // greedy: top-k over all experts
  routing_group_max,      // group_limited_greedy: a group scores its best expert
  routing_group_top2_sum  // noaux_tc: a group scores the sum of its two best (biased) experts
};

// MoE expert choice (MATH.md "MoE").
struct RoutingParams {
  int n_experts;
  int top_k;
  int n_group;
  int topk_group;
  RoutingScore score;
  RoutingGroupScore group_score;
  bool use_score_bias;  // noaux_tc: choose by score + bias, weigh by score
  bool normalize;       // divide the chosen weights by their sum (+1e-20)
  float scaling;        // routed_scaling_factor
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- memory
  virtual Buffer alloc(DType dtype, int64_t rows, int64_t cols) = 0;
  virtual void to_host(const Tensor& src, float* dst) = 0;  // f32 tensor -> host, row by row

  // ---- ops
  // out[i] = table[ids[i]] widened to f32. out: [n_ids, hidden]
  virtual void embedding(const Weight& table, std::span<const int32_t> ids, Tensor out) = 0;
  // out = weight * x / sqrt(mean(x^2) + eps) per row. x, out: [n, d]; weight f32 [1, d]; out may alias x.
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) = 0;
  // out = x W^T. x: [n, in], out: [n, out] (f32).
  virtual void linear(const Tensor& x, const Weight& w, Tensor out) = 0;
  // In place: rotates the interleaved pairs of dims [rope_offset, rope_offset + rope_dim) of each
  // of n_heads heads (head h starts at column h * head_stride) of row i by positions[i] *
  // inv_freq, cos and sin scaled by attention_factor (MATH.md "Rotary embedding").
  virtual void rope(Tensor x, int n_heads, int64_t head_stride, int64_t rope_offset,
                    std::span<const int32_t> positions, std::span<const float> inv_freq,
                    float attention_factor) = 0;
  // out = silu(gate) * up. gate, up, out: [n, d]; out may alias gate.
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor out) = 0;
  // x += y. x, y: [n, d]
  virtual void add(Tensor x, const Tensor& y) = 0;

  // Writes the new tokens' latent rows. kv: [n_tokens, kv_dim]; slots: [n_tokens].
  virtual void kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv,
                              std::span<const int64_t> slots) = 0;
  // Absorbs W_UK into the query: q_full[:, h] = [W_UK_h^T q_nope_h, q_pe_h].
  // q: [n, n_heads * (dn + dr)] (rope applied); kv_b: [n_heads * (dn + dv), r];
  // q_full: [n, n_heads * (r + dr)]
  virtual void mla_absorb_query(const Tensor& q, const Weight& kv_b, const MlaShape& shape, Tensor q_full) = 0;
  // Causal attention of every batch token over its sequence's cached rows in latent space:
  // o_latent[:, h] = sum_j softmax_j(scale * q_full_h . row_j) * row_j[:r].
  // q_full: [n, n_heads * (r + dr)]; o_latent: [n, n_heads * r]
  virtual void mla_attention(const Tensor& q_full, const KvCacheView& cache, int layer, const ForwardBatch& batch,
                             const MlaShape& shape, Tensor o_latent) = 0;
  // o[:, h] = W_UV_h o_latent_h. o_latent: [n, n_heads * r]; o: [n, n_heads * dv]
  virtual void mla_expand_output(const Tensor& o_latent, const Weight& kv_b, const MlaShape& shape, Tensor o) = 0;

  // Chooses top_k experts per token. logits: f32 [n, n_experts]; score_bias: f32 [1, n_experts]
  // (read only with use_score_bias); expert_ids: i32 [n, top_k]; expert_weights: f32 [n, top_k]
  virtual void moe_route(const Tensor& logits, const Tensor& score_bias, const RoutingParams& params,
                         Tensor expert_ids, Tensor expert_weights) = 0;
  // out = sum_k expert_weights[:, k] * MLP_{expert_ids[:, k]}(x). x, out: [n, hidden]
  virtual void moe_experts(const Tensor& x, const Tensor& expert_ids, const Tensor& expert_weights,
                           std::span<const MlpWeights> experts, Tensor out) = 0;
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace dsi
