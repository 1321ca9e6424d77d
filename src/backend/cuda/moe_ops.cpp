// Checked host wrappers of the MoE kernels (moe_route.cu, moe_dispatch.cu, grouped_gemm.cu).
#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/launch.h"
#include "core/error.h"

namespace dsi::cuda {

namespace {

bool is_act(DType t) { return t == DType::f32 || t == DType::bf16; }

}  // namespace

void moe_route(const MoeRouteParams& p, cudaStream_t stream) {
  const RoutingParams& r = p.routing;
  const char* op = "cuda::moe_route";
  if (r.n_experts < 1 || r.n_experts > kMoeMaxExperts)
    fail("{}: {} experts; the kernel takes 1 to {}", op, r.n_experts, kMoeMaxExperts);
  if (r.top_k < 1 || r.top_k > r.n_experts || r.top_k > kMoeMaxTopK)
    fail("{}: top_k {} outside [1, {}]", op, r.top_k, std::min(r.n_experts, kMoeMaxTopK));
  if (r.n_group < 1 || r.n_group > 32 || r.n_experts % r.n_group != 0 || r.topk_group < 1 ||
      r.topk_group > r.n_group)
    fail("{}: n_group {} / topk_group {} do not divide {} experts (at most 32 groups)", op, r.n_group,
         r.topk_group, r.n_experts);
  if (r.group_score == RoutingGroupScore::routing_group_top2_sum && r.n_group > 1 && r.n_experts / r.n_group < 2)
    fail("{}: a group must hold two experts to be scored by its two best", op);
  if (r.use_score_bias && p.score_bias == nullptr) fail("{}: use_score_bias without a score bias", op);
  if (p.n_tokens < 0 || !p.expert_counts || (p.n_tokens > 0 && (!p.logits || !p.expert_ids || !p.expert_weights)))
    fail("{}: a device pointer is missing", op);
  if (p.n_tokens > 0 && p.logits_ld < r.n_experts) fail("{}: logits row stride {} < {}", op, p.logits_ld, r.n_experts);
  DSI_CUDA_CHECK(launch_moe_route(p, stream));
  DSI_CUDA_CHECK_LAUNCH(stream, "moe_route");
}

void moe_dispatch(const MoeDispatchParams& p, cudaStream_t stream) {
  const char* op = "cuda::moe_dispatch";
  if (p.n_experts < 1 || p.n_experts > kMoeMaxExperts || p.top_k < 1 || p.top_k > p.n_experts || p.n_tokens < 0)
    fail("{}: {} tokens, top_k {} of {} experts (at most {})", op, p.n_tokens, p.top_k, p.n_experts, kMoeMaxExperts);
  if (!is_act(p.act_dtype)) fail("{}: activations are {}, expected f32 or bf16", op, dtype_name(p.act_dtype));
  if (!p.expert_offsets || (p.n_tokens > 0 && (!p.expert_ids || !p.row_map || !p.x || !p.x_sorted)))
    fail("{}: a device pointer is missing", op);
  if (p.n_tokens > 0 && (p.x_ld < p.hidden || p.x_sorted_ld < p.hidden))
    fail("{}: row strides x {} / x_sorted {} < hidden {}", op, p.x_ld, p.x_sorted_ld, p.hidden);
  DSI_CUDA_CHECK(launch_moe_dispatch(p, stream));
  DSI_CUDA_CHECK_LAUNCH(stream, "moe_dispatch");
}

void moe_experts(const MoeExpertsParams& p, cudaStream_t stream) {
  if (!is_act(p.act_dtype))
    fail("cuda::moe_experts: activations are {}, expected f32 or bf16", dtype_name(p.act_dtype));
  if (p.n_rows > 0 && (!p.expert_offsets || !p.x_sorted || !p.h || !p.y_sorted))
    fail("cuda::moe_experts: a device pointer is missing");
  GroupedGemmParams g;
  g.act_dtype = p.act_dtype;
  g.n_groups = p.n_experts;
  g.row_offsets = p.expert_offsets;
  g.n_rows = p.n_rows;
  // h = silu(x gate^T) * (x up^T), fused in one launch.
  g.n_cols = p.inter;
  g.depth = p.hidden;
  g.a = p.x_sorted;
  g.a_ld = p.hidden;
  g.y = p.h;
  g.y_ld = p.inter;
  g.w = p.gate;
  g.w_up = p.up;
  grouped_gemm(g, stream);
  // y = h down^T.
  g.n_cols = p.hidden;
  g.depth = p.inter;
  g.a = p.h;
  g.a_ld = p.inter;
  g.y = p.y_sorted;
  g.y_ld = p.hidden;
  g.w = p.down;
  g.w_up = GroupedWeight{};
  grouped_gemm(g, stream);
}

void moe_combine(const MoeCombineParams& p, cudaStream_t stream) {
  const char* op = "cuda::moe_combine";
  if (!is_act(p.act_dtype)) fail("{}: activations are {}, expected f32 or bf16", op, dtype_name(p.act_dtype));
  if (p.top_k < 1 || p.top_k > kMoeMaxTopK || p.n_tokens < 0 || p.hidden < 1)
    fail("{}: {} tokens, top_k {}, hidden {}", op, p.n_tokens, p.top_k, p.hidden);
  if (p.n_tokens > 0 && (!p.expert_ids || !p.expert_weights || !p.row_map || !p.y_sorted || !p.out))
    fail("{}: a device pointer is missing", op);
  if (p.out_ld < p.hidden || (p.shared_out && p.shared_ld < p.hidden))
    fail("{}: row strides out {} / shared {} < hidden {}", op, p.out_ld, p.shared_ld, p.hidden);
  DSI_CUDA_CHECK(launch_moe_combine(p, stream));
  DSI_CUDA_CHECK_LAUNCH(stream, "moe_combine");
}

}  // namespace dsi::cuda
