#include "model/workspace.h"

#include <algorithm>
#include <vector>

namespace dsi {

Workspace::Workspace(Backend& be, const ModelConfig& c, const StepLimits& limits, const StepBounds& bounds)
    : step(be, limits, bounds) {
  const int64_t n = limits.max_tokens;
  const DType act = be.activation_dtype();
  auto make = [&](DType dtype, int64_t rows, int64_t cols) {
    Buffer b = be.alloc(dtype, rows, cols);
    n_bytes_ += rows * cols * int64_t(dtype_size(dtype));
    return b;
  };
  auto activation = [&](int64_t cols) { return make(act, n, cols); };
  const int64_t inter = std::max(c.intermediate_size, c.moe_intermediate_size * std::max(c.n_shared_experts, 1));
  x = activation(c.hidden_size);
  h = activation(c.hidden_size);
  out = activation(c.hidden_size);
  const int64_t q_cols = c.q_lora_rank ? *c.q_lora_rank : c.n_heads * c.qk_head_dim();
  q_kv = activation(q_cols + c.kv_cache_dim());
  const Buffer query{q_kv.t.slice_cols(0, q_cols), q_kv.owner};
  if (c.q_lora_rank) {
    q_a = query;
    q = activation(c.n_heads * c.qk_head_dim());
  } else {
    q = query;
  }
  kv = {q_kv.t.slice_cols(q_cols, c.kv_cache_dim()), q_kv.owner};
  q_full = activation(c.n_heads * c.kv_cache_dim());
  o_latent = activation(c.n_heads * c.kv_lora_rank);
  o = activation(c.n_heads * c.v_head_dim);
  gate_up = activation(2 * inter);
  if (c.n_routed_experts > 0) {
    const int64_t k = c.num_experts_per_tok, E = c.n_routed_experts;
    router_logits = make(DType::f32, n, E);
    expert_ids = make(DType::i32, n, k);
    expert_weights = make(DType::f32, n, k);
    row_map = make(DType::i32, n, k);
    expert_offsets = make(DType::i32, 1, E + 1);
    expert_counts = make(DType::i32, c.n_layers, E);
    const std::vector<int32_t> zeros(size_t(c.n_layers * E), 0);
    be.copy_from_host(zeros.data(), expert_counts.t);
    be.synchronize();  // `zeros` goes out of scope
    x_sorted = make(act, n * k, c.hidden_size);
    moe_gate = make(act, n * k, c.moe_intermediate_size);
    moe_up = make(act, n * k, c.moe_intermediate_size);
    y_sorted = make(act, n * k, c.hidden_size);
    shared = activation(c.hidden_size);
  }
  last = make(act, limits.max_logit_rows, c.hidden_size);
  logits = make(DType::f32, limits.max_logit_rows, c.vocab_size);
}

}  // namespace dsi
