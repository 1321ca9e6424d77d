#pragma once
// DeepSeekMoE on the GPU as four steps, each graph-capturable (device pointers, no host round
// trip, no allocation): route -> dispatch -> grouped expert MLP -> combine. The CPU oracle is
// CpuBackend::moe_route / moe_experts (src/backend/cpu/moe.cpp), whose tie-breaking (lower
// expert or group index first) and summation order (increasing expert id) these follow.
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/grouped_gemm.h"
#include "backend/cuda/grouped_gemv.h"

namespace dsi::cuda {

// Largest expert count the routing and dispatch kernels hold per token / per CTA.
constexpr int kMoeMaxExperts = 256;
constexpr int kMoeMaxTopK = 32;

struct MoeRouteParams {
  RoutingParams routing;
  int n_tokens = 0;
  const float* logits = nullptr;      // [n_tokens, n_experts], row stride logits_ld
  int64_t logits_ld = 0;
  const float* score_bias = nullptr;  // [n_experts], read only with routing.use_score_bias
  int32_t* expert_ids = nullptr;      // [n_tokens, top_k], best first
  float* expert_weights = nullptr;    // [n_tokens, top_k]
  int32_t* expert_counts = nullptr;   // [n_experts]: tokens per expert, zeroed and filled here
};

struct MoeDispatchParams {
  int n_tokens = 0;
  int top_k = 0;
  int n_experts = 0;
  // [n_tokens, top_k], each in [0, n_experts) (ids outside are dropped: their rows stay unset).
  // The kernel counts the experts' rows itself, so its offsets always agree with these ids.
  const int32_t* expert_ids = nullptr;
  int32_t* expert_offsets = nullptr;  // [n_experts + 1] out: expert e owns sorted rows [off[e], off[e+1])
  int32_t* row_map = nullptr;         // [n_tokens, top_k] out: the x_sorted row of (token, choice)
  DType act_dtype = DType::bf16;      // x and x_sorted: bf16 or f32
  int64_t hidden = 0;
  const void* x = nullptr;  // [n_tokens, hidden], row stride x_ld
  int64_t x_ld = 0;
  void* x_sorted = nullptr;  // [n_tokens * top_k, hidden], row stride x_sorted_ld
  int64_t x_sorted_ld = 0;
};

// The routed experts' MLPs over x_sorted, two launches for all experts together:
// h = silu(x W_gate^T) * (x W_up^T), then y = h W_down^T, per expert on its own rows.
struct MoeExpertsParams {
  DType act_dtype = DType::bf16;  // x_sorted, h and y_sorted: bf16 (tensor cores) or f32
  int n_experts = 0;
  int64_t hidden = 0;
  int64_t inter = 0;                        // moe_intermediate_size
  int64_t n_rows = 0;                       // n_tokens * top_k
  const int32_t* expert_offsets = nullptr;  // [n_experts + 1], from moe_dispatch
  const void* x_sorted = nullptr;           // [n_rows, hidden], contiguous
  GroupedWeight gate;  // per expert [inter, hidden] (e.g. stacked [n_experts * inter, hidden])
  GroupedWeight up;    // per expert [inter, hidden]
  GroupedWeight down;  // per expert [hidden, inter]
  void* h = nullptr;         // scratch [n_rows, inter], contiguous
  void* y_sorted = nullptr;  // [n_rows, hidden], contiguous
  // Few rows per expert (decode): the skinny grouped kernels (grouped_gemv.h), which read only
  // the experts that have rows, once; else the tiled grouped GEMM. moe_experts decides when
  // they are taken (skinny_moe_experts).
  SkinnyKernel skinny = SkinnyKernel::tensor_cores;
};

// Whether moe_experts takes the skinny kernels for these params: bf16 activations, a supported
// weight layout and at most moe_skinny_rows_per_expert rows per expert on average.
inline int64_t moe_skinny_rows_per_expert(SkinnyKernel k) { return skinny_limits(k).expert_rows; }
bool skinny_moe_experts(const MoeExpertsParams& p);

struct MoeCombineParams {
  DType act_dtype = DType::bf16;  // y_sorted, shared_out and out: bf16 or f32
  int n_tokens = 0;
  int top_k = 0;
  int64_t hidden = 0;
  const int32_t* expert_ids = nullptr;  // [n_tokens, top_k]: the sum runs in increasing expert id
  const float* expert_weights = nullptr;  // [n_tokens, top_k]
  const int32_t* row_map = nullptr;       // [n_tokens, top_k], from moe_dispatch
  const void* y_sorted = nullptr;         // [n_tokens * top_k, hidden], contiguous
  const void* shared_out = nullptr;       // optional [n_tokens, hidden]: added to the rounded routed sum
  int64_t shared_ld = 0;
  void* out = nullptr;  // [n_tokens, hidden]: sum_k w[t, k] y_sorted[row(t, k)] (+ shared_out[t])
  int64_t out_ld = 0;
};

void moe_route(const MoeRouteParams& p, cudaStream_t stream);
void moe_dispatch(const MoeDispatchParams& p, cudaStream_t stream);
void moe_experts(const MoeExpertsParams& p, cudaStream_t stream);
void moe_combine(const MoeCombineParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
