#pragma once
// Every activation buffer of a forward pass, allocated once at startup in backend memory and
// sized for the largest step (max_num_batched_tokens rows; MoE dispatch buffers n * top_k rows;
// logits max_logit_rows), plus the step context. A forward slices the first n rows of each, so
// a step allocates nothing (the precondition for capturing it in a CUDA graph).
#include "backend/backend.h"
#include "backend/step_context.h"
#include "model/config.h"

namespace dsi {

class Workspace {
 public:
  // Allocates everything for `config` on `backend` (activations in its activation dtype).
  Workspace(Backend& backend, const ModelConfig& config, const StepLimits& limits, const StepBounds& bounds);
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  StepContext step;

  // Names are the dump names of what they hold (model/tensor_dump.h). [max_tokens, cols]
  // unless noted; act = the backend's activation dtype.
  Buffer x;              // act [, hidden] residual stream
  Buffer h;              // act [, hidden] normalised input of a sub-layer
  Buffer out;            // act [, hidden] output of a sub-layer
  // q_kv holds, side by side, the two products of the sub-layer's input: the query (q, or q_a
  // when q_lora_rank is set) then kv, so that a stacked q_kv_a weight writes both in one
  // product; those two are views of its columns.
  Buffer q_kv;           // act [, q cols + r + dr]
  Buffer q_a;            // act [, q_lora_rank] (q_lora_rank set): columns of q_kv
  Buffer q;              // act [, n_heads * (dn + dr)]: columns of q_kv without q_lora_rank
  Buffer kv;             // act [, r + dr] latent and rotary key, the cache row: columns of q_kv
  Buffer q_full;         // act [, n_heads * (r + dr)]
  Buffer o_latent;       // act [, n_heads * r]
  Buffer o;              // act [, n_heads * dv]
  // An MLP of width w writes gate into columns [0, w) and up into [w, 2w) (one product where
  // its gate_up weight is stacked).
  Buffer gate_up;        // act [, 2 max(intermediate, shared width)]
  Buffer router_logits;  // f32 [, n_routed_experts]
  Buffer expert_ids;     // i32 [, top_k]
  Buffer expert_weights;  // f32 [, top_k]
  Buffer row_map;         // i32 [, top_k]
  Buffer expert_offsets;  // i32 [1, n_routed_experts + 1]
  Buffer expert_counts;   // i32 [n_layers, n_routed_experts], the last step's counts (zero for dense layers)
  Buffer x_sorted;        // act [max_tokens * top_k, hidden]
  Buffer moe_gate;        // act [max_tokens * top_k, moe_intermediate]
  Buffer moe_up;          // act [max_tokens * top_k, moe_intermediate]
  Buffer y_sorted;        // act [max_tokens * top_k, hidden]
  Buffer shared;          // act [, hidden] shared experts' output
  Buffer last;            // act [max_logit_rows, hidden] final-normed rows whose logits are wanted
  Buffer logits;          // f32 [max_logit_rows, vocab]

  int64_t n_bytes() const { return n_bytes_; }

 private:
  int64_t n_bytes_ = 0;
};

}  // namespace dsi
