// DeepSeekMoE on the CPU backend in four ops: expert choice per token (with per-expert counts),
// dispatch (rows permuted expert-major), every routed expert once over the tokens that chose it
// (one batched GEMM region for all experts), and the weighted combine.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "core/error.h"

namespace dsi::cpu {

void route_token(std::span<const float> logits, std::span<const float> score_bias, const RoutingParams& p,
                 std::span<int32_t> ids, std::span<float> weights) {
  const int E = p.n_experts;
  std::vector<float> score(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
  if (p.score == RoutingScore::routing_score_softmax) {
    const float m = *std::max_element(logits.begin(), logits.end());
    float sum = 0;
    for (int e = 0; e < E; ++e) sum += (score[size_t(e)] = std::exp(logits[size_t(e)] - m));
    for (auto& v : score) v /= sum;
  } else {
    for (int e = 0; e < E; ++e) score[size_t(e)] = 1.0f / (1.0f + std::exp(-logits[size_t(e)]));
  }
  for (int e = 0; e < E; ++e) choice[size_t(e)] = score[size_t(e)] + (p.use_score_bias ? score_bias[size_t(e)] : 0.0f);

  // Ties go to the lower index, so results do not depend on the sort's stability.
  auto better = [&](int a, int b) {
    return choice[size_t(a)] > choice[size_t(b)] || (choice[size_t(a)] == choice[size_t(b)] && a < b);
  };
  if (p.group_score != RoutingGroupScore::routing_group_none && p.n_group > 1) {
    const int per_group = E / p.n_group;
    std::vector<float> group_score(static_cast<size_t>(p.n_group));
    for (int g = 0; g < p.n_group; ++g) {
      auto begin = choice.begin() + g * per_group;
      if (p.group_score == RoutingGroupScore::routing_group_max) {
        group_score[size_t(g)] = *std::max_element(begin, begin + per_group);
      } else {
        std::vector<float> members(begin, begin + per_group);
        std::partial_sort(members.begin(), members.begin() + 2, members.end(), std::greater<>());
        group_score[size_t(g)] = members[0] + members[1];
      }
    }
    std::vector<int> groups(static_cast<size_t>(p.n_group));
    std::iota(groups.begin(), groups.end(), 0);
    std::partial_sort(groups.begin(), groups.begin() + p.topk_group, groups.end(), [&](int a, int b) {
      return group_score[size_t(a)] > group_score[size_t(b)] || (group_score[size_t(a)] == group_score[size_t(b)] && a < b);
    });
    std::vector<bool> keep(size_t(p.n_group), false);
    for (int i = 0; i < p.topk_group; ++i) keep[size_t(groups[size_t(i)])] = true;
    // Experts of dropped groups can never be chosen (DeepSeek's reference masks them with
    // -inf; transformers fills 0.0, which picks the same experts whenever k kept experts
    // have non-negative scores, as softmax and sigmoid scores always do without a bias).
    for (int e = 0; e < E; ++e)
      if (!keep[size_t(e / per_group)]) choice[size_t(e)] = -std::numeric_limits<float>::infinity();
  }
  std::vector<int> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + p.top_k, order.end(), better);
  float sum = 0;
  for (int i = 0; i < p.top_k; ++i) {
    ids[size_t(i)] = order[size_t(i)];
    weights[size_t(i)] = score[size_t(order[size_t(i)])];
    sum += weights[size_t(i)];
  }
  for (int i = 0; i < p.top_k; ++i) {
    if (p.normalize) weights[size_t(i)] /= sum + 1e-20f;
    weights[size_t(i)] *= p.scaling;
  }
}

void CpuBackend::moe_route(const Tensor& logits, const Tensor& score_bias, const RoutingParams& p, Tensor expert_ids,
                           Tensor expert_weights, Tensor expert_counts) {
  std::span<const float> bias;
  if (p.use_score_bias) bias = {score_bias.row<const float>(0), size_t(p.n_experts)};
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < logits.rows; ++t)
    route_token({logits.row<const float>(t), size_t(p.n_experts)}, bias, p,
                {expert_ids.row<int32_t>(t), size_t(p.top_k)}, {expert_weights.row<float>(t), size_t(p.top_k)});
  int32_t* counts = expert_counts.row<int32_t>(0);
  std::fill_n(counts, p.n_experts, 0);
  for (int64_t t = 0; t < logits.rows; ++t)
    for (int j = 0; j < p.top_k; ++j) ++counts[expert_ids.row<const int32_t>(t)[j]];
}

// Expert e owns rows [offset[e], offset[e + 1]); within an expert, (token, choice) pairs keep
// batch order.
void CpuBackend::moe_dispatch(const Tensor& x, const Tensor& expert_ids, const Tensor& expert_counts, Tensor x_sorted,
                              Tensor expert_offsets, Tensor row_map) {
  const int64_t n = x.rows, k = expert_ids.cols, H = x.cols;
  const int n_experts = int(expert_counts.cols);
  const int32_t* counts = expert_counts.row<const int32_t>(0);
  int32_t* offset = expert_offsets.row<int32_t>(0);
  offset[0] = 0;
  for (int e = 0; e < n_experts; ++e) offset[e + 1] = offset[e] + counts[e];
  if (offset[n_experts] != n * k)
    fail("moe_dispatch: expert counts sum to {}, expected {} tokens x {} choices", offset[n_experts], n, k);
  std::vector<int32_t> fill(offset, offset + n_experts);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) row_map.row<int32_t>(t)[j] = fill[size_t(expert_ids.row<const int32_t>(t)[j])]++;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) std::copy_n(x.row<const float>(t), H, x_sorted.row<float>(row_map.row<const int32_t>(t)[j]));
}

// Every routed expert over its rows: one batched GEMM region for all experts' gate and up
// projections, SiLU gating over all rows at once (every expert has the same width), and one
// region for the down projections.
void CpuBackend::moe_grouped_mlp(const Tensor& x_sorted, const Tensor& expert_offsets, const ExpertMlpWeights& w,
                                 Tensor gate, Tensor up, Tensor y_sorted) {
  const int n_experts = w.gate.n_experts();
  const int32_t* offset = expert_offsets.row<const int32_t>(0);
  auto rows_of = [&](const Tensor& t, int e) { return t.slice_rows(offset[e], offset[e + 1] - offset[e]); };
  std::vector<GemmProblem> problems;
  for (int e = 0; e < n_experts; ++e) {
    if (offset[e + 1] == offset[e]) continue;
    problems.push_back({rows_of(x_sorted, e), w.gate.experts[size_t(e)], rows_of(gate, e), false});
    problems.push_back({rows_of(x_sorted, e), w.up.experts[size_t(e)], rows_of(up, e), false});
  }
  linear_batch(problems);
  problems.clear();
  silu_mul(gate, up, gate);
  for (int e = 0; e < n_experts; ++e) {
    if (offset[e + 1] == offset[e]) continue;
    problems.push_back({rows_of(gate, e), w.down.experts[size_t(e)], rows_of(y_sorted, e), false});
  }
  linear_batch(problems);
}

// Each token sums its experts in increasing expert order, as the reference does.
void CpuBackend::moe_combine(const Tensor& y_sorted, const Tensor& row_map, const Tensor& expert_ids,
                             const Tensor& expert_weights, const Tensor& shared, Tensor out) {
  const int64_t n = out.rows, k = row_map.cols, H = out.cols;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    std::vector<int64_t> slots(static_cast<size_t>(k));
    std::iota(slots.begin(), slots.end(), 0);
    const int32_t* ids = expert_ids.row<const int32_t>(t);
    std::sort(slots.begin(), slots.end(), [&](int64_t a, int64_t b) { return ids[a] < ids[b]; });
    float* o = out.row<float>(t);
    std::fill_n(o, H, 0.0f);
    for (int64_t j : slots) {
      const float wt = expert_weights.row<const float>(t)[j];
      const float* d = y_sorted.row<const float>(row_map.row<const int32_t>(t)[j]);
      for (int64_t i = 0; i < H; ++i) o[i] += wt * d[i];
    }
    if (shared.data) {
      const float* s = shared.row<const float>(t);
      for (int64_t i = 0; i < H; ++i) o[i] += s[i];
    }
  }
}

}  // namespace dsi::cpu
