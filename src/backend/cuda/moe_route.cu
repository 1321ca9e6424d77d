// MoE routing: one warp per token. Each lane holds the experts lane, lane + 32, ...; groups
// are scored by one lane each; the top-k are k rounds of a warp arg-max whose ties go to the
// lower expert index, exactly as dsi::cpu::route_token orders them.
#include <climits>
#include <cmath>

#include "backend/cuda/device_types.cuh"
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

constexpr int kPerLane = kMoeMaxExperts / 32;
constexpr int kWarpsPerCta = 4;

__global__ void __launch_bounds__(32 * kWarpsPerCta) moe_route_kernel(MoeRouteParams p) {
  detail::pdl_begin();
  __shared__ float score_all[kWarpsPerCta][kMoeMaxExperts];
  __shared__ float choice_all[kWarpsPerCta][kMoeMaxExperts];
  __shared__ int chosen_all[kWarpsPerCta][kMoeMaxTopK];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int t = int(blockIdx.x) * kWarpsPerCta + warp;
  if (t >= p.n_tokens) return;  // whole warps only; no block-wide barrier below
  const RoutingParams& r = p.routing;
  const int E = r.n_experts;
  float* score = score_all[warp];
  float* choice = choice_all[warp];
  const float* logits = p.logits + int64_t(t) * p.logits_ld;

  float s[kPerLane];
  if (r.score == RoutingScore::routing_score_softmax) {
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      s[i] = e < E ? logits[e] : -INFINITY;
      m = fmaxf(m, s[i]);
    }
    m = warp_max(m);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      s[i] = lane + 32 * i < E ? expf(s[i] - m) : 0.0f;
      sum += s[i];
    }
    sum = warp_sum_f32(sum);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) s[i] /= sum;
  } else {
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      s[i] = e < E ? 1.0f / (1.0f + expf(-logits[e])) : 0.0f;
    }
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    if (e < E) {
      score[e] = s[i];
      choice[e] = s[i] + (r.use_score_bias ? p.score_bias[e] : 0.0f);
    }
  }
  __syncwarp();

  if (r.group_score != RoutingGroupScore::routing_group_none && r.n_group > 1) {
    const int per_group = E / r.n_group;
    float gs = -INFINITY;
    if (lane < r.n_group) {
      const float* c = choice + lane * per_group;
      if (r.group_score == RoutingGroupScore::routing_group_max) {
        gs = c[0];
        for (int i = 1; i < per_group; ++i) gs = fmaxf(gs, c[i]);
      } else {  // the sum of the two largest members (a repeated value counts twice)
        float best = -INFINITY, second = -INFINITY;
        for (int i = 0; i < per_group; ++i) {
          if (c[i] > best) {
            second = best;
            best = c[i];
          } else if (c[i] > second) {
            second = c[i];
          }
        }
        gs = best + second;
      }
    }
    // A group's rank: the groups ahead of it, better or equal with a lower index.
    int rank = 0;
    for (int h = 0; h < r.n_group; ++h) {
      const float other = __shfl_sync(0xffffffffu, gs, h);
      rank += (other > gs || (other == gs && h < lane)) ? 1 : 0;
    }
    const unsigned keep = __ballot_sync(0xffffffffu, lane < r.n_group && rank < r.topk_group);
    __syncwarp();
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < E && !((keep >> (e / per_group)) & 1u)) choice[e] = -INFINITY;
    }
    __syncwarp();
  }

  float c[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) c[i] = lane + 32 * i < E ? choice[lane + 32 * i] : -INFINITY;
  unsigned taken = 0;  // bit i: expert lane + 32 i is chosen
  for (int k = 0; k < r.top_k; ++k) {
    float best = -INFINITY;
    int best_e = INT_MAX;  // INT_MAX: no candidate (loses to any expert, even at -inf)
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < E && !((taken >> i) & 1u) && (best_e == INT_MAX || c[i] > best)) {
        best = c[i];
        best_e = e;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, best, o);
      const int other_e = __shfl_xor_sync(0xffffffffu, best_e, o);
      if (other_e != INT_MAX &&
          (best_e == INT_MAX || other > best || (other == best && other_e < best_e))) {
        best = other;
        best_e = other_e;
      }
    }
    if ((best_e & 31) == lane) taken |= 1u << (best_e >> 5);
    if (lane == 0) chosen_all[warp][k] = best_e;
  }
  __syncwarp();
  if (lane == 0) {
    // The same float operations in the same order as route_token.
    const int* chosen = chosen_all[warp];
    float sum = 0.0f;
    for (int k = 0; k < r.top_k; ++k) sum += score[chosen[k]];
    for (int k = 0; k < r.top_k; ++k) {
      float w = score[chosen[k]];
      if (r.normalize) w /= sum + 1e-20f;
      w *= r.scaling;
      p.expert_ids[int64_t(t) * r.top_k + k] = chosen[k];
      p.expert_weights[int64_t(t) * r.top_k + k] = w;
      atomicAdd(p.expert_counts + chosen[k], 1);
    }
  }
}

}  // namespace

cudaError_t launch_moe_route(const MoeRouteParams& p, cudaStream_t stream) {
  cudaError_t err = cudaMemsetAsync(p.expert_counts, 0, size_t(p.routing.n_experts) * sizeof(int32_t), stream);
  if (err != cudaSuccess || p.n_tokens == 0) return err;
  const unsigned grid = unsigned((p.n_tokens + kWarpsPerCta - 1) / kWarpsPerCta);
  detail::launch(moe_route_kernel, grid, 32 * kWarpsPerCta, 0, stream, p);
  return cudaGetLastError();
}

}  // namespace dsi::cuda
