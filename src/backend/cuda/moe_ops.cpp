// Checked host wrappers of the MoE kernels (moe_route.cu, moe_dispatch.cu, grouped_gemm.cu).
#include <algorithm>
#include <utility>

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

namespace {

// The two products of the experts as grouped-GEMM problems: [0] gate+up fused, [1] down.
std::pair<GroupedGemmParams, GroupedGemmParams> expert_problems(const MoeExpertsParams& p) {
  GroupedGemmParams gate_up;
  gate_up.act_dtype = p.act_dtype;
  gate_up.n_groups = p.n_experts;
  gate_up.row_offsets = p.expert_offsets;
  gate_up.n_rows = p.n_rows;
  // h = silu(x gate^T) * (x up^T), fused in one launch.
  gate_up.n_cols = p.inter;
  gate_up.depth = p.hidden;
  gate_up.a = p.x_sorted;
  gate_up.a_ld = p.hidden;
  gate_up.y = p.h;
  gate_up.y_ld = p.inter;
  gate_up.w = p.gate;
  gate_up.w_up = p.up;
  // y = h down^T.
  GroupedGemmParams down = gate_up;
  down.n_cols = p.hidden;
  down.depth = p.inter;
  down.a = p.h;
  down.a_ld = p.inter;
  down.y = p.y_sorted;
  down.y_ld = p.hidden;
  down.w = p.down;
  down.w_up = GroupedWeight{};
  return {gate_up, down};
}

GroupedGemvParams skinny(const GroupedGemmParams& g, int max_active, SkinnyKernel k) {
  GroupedGemvParams q;
  q.gemm = g;
  q.y_dtype = g.act_dtype;
  q.max_active_groups = max_active;
  q.routed_rows = true;
  pick_skinny_kernel(q, k);
  return q;
}

int max_active_experts(const MoeExpertsParams& p) { return int(std::min<int64_t>(p.n_experts, p.n_rows)); }

}  // namespace

bool skinny_moe_experts(const MoeExpertsParams& p) {
  if (p.skinny == SkinnyKernel::none || p.act_dtype != DType::bf16 ||
      p.n_rows > moe_skinny_rows_per_expert(p.skinny) * p.n_experts)
    return false;
  const auto [gate_up, down] = expert_problems(p);
  const int active = max_active_experts(p);
  return grouped_gemv_supported(skinny(gate_up, active, p.skinny)) &&
         grouped_gemv_supported(skinny(down, active, p.skinny));
}

void moe_experts(const MoeExpertsParams& p, cudaStream_t stream) {
  if (!is_act(p.act_dtype))
    fail("cuda::moe_experts: activations are {}, expected f32 or bf16", dtype_name(p.act_dtype));
  if (p.n_rows > 0 && (!p.expert_offsets || !p.x_sorted || !p.h || !p.y_sorted))
    fail("cuda::moe_experts: a device pointer is missing");
  const auto [gate_up, down] = expert_problems(p);
  if (skinny_moe_experts(p)) {
    const int active = max_active_experts(p);
    grouped_gemv(skinny(gate_up, active, p.skinny), stream);
    grouped_gemv(skinny(down, active, p.skinny), stream);
    return;
  }
  grouped_gemm(gate_up, stream);
  grouped_gemm(down, stream);
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
