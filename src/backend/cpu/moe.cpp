// DeepSeekMoE on the CPU backend: expert choice per token, then every routed expert runs once
// over the tokens that chose it (one batched GEMM region for all experts), then a weighted sum.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "core/aligned_buffer.h"
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
                           Tensor expert_weights) {
  if (logits.dtype != DType::f32 || logits.cols != p.n_experts)
    fail("moe_route: logits must be f32 [n, {}], got {} [{}, {}]", p.n_experts, dtype_name(logits.dtype), logits.rows,
         logits.cols);
  if (expert_ids.dtype != DType::i32 || expert_ids.rows != logits.rows || expert_ids.cols != p.top_k ||
      expert_weights.dtype != DType::f32 || expert_weights.rows != logits.rows || expert_weights.cols != p.top_k)
    fail("moe_route: outputs must be i32 and f32 [{}, {}]", logits.rows, p.top_k);
  if (p.use_score_bias && score_bias.numel() != p.n_experts)
    fail("moe_route: score bias has {} values for {} experts", score_bias.numel(), p.n_experts);
  if (p.top_k < 1 || p.top_k > p.n_experts || p.n_group < 1 || p.n_experts % p.n_group != 0 || p.topk_group < 1 ||
      p.topk_group > p.n_group)
    fail("moe_route: inconsistent routing parameters");
  std::span<const float> bias;
  if (p.use_score_bias) bias = {score_bias.row<const float>(0), size_t(p.n_experts)};
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < logits.rows; ++t)
    route_token({logits.row<const float>(t), size_t(p.n_experts)}, bias, p,
                {expert_ids.row<int32_t>(t), size_t(p.top_k)}, {expert_weights.row<float>(t), size_t(p.top_k)});
}

void CpuBackend::moe_experts(const Tensor& x, const Tensor& expert_ids, const Tensor& expert_weights,
                             std::span<const MlpWeights> experts, Tensor out) {
  const int64_t n = x.rows, k = expert_ids.cols, H = x.cols;
  if (expert_ids.rows != n || expert_weights.rows != n || expert_weights.cols != k || out.rows != n || out.cols != H)
    fail("moe_experts: shapes do not match: x [{}, {}], ids [{}, {}], out [{}, {}]", n, H, expert_ids.rows, k,
         out.rows, out.cols);
  const int n_experts = int(experts.size());
  // Group the (token, slot) pairs by expert: expert e owns rows [offset[e], offset[e + 1]).
  std::vector<int64_t> offset(size_t(n_experts) + 1, 0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int32_t e = expert_ids.row<const int32_t>(t)[j];
      if (e < 0 || e >= n_experts) fail("moe_experts: expert id {} outside [0, {})", e, n_experts);
      ++offset[size_t(e) + 1];
    }
  std::partial_sum(offset.begin(), offset.end(), offset.begin());
  const int64_t n_rows = offset.back();
  std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
  std::vector<int64_t> row_of(static_cast<size_t>(n * k));  // (t, j) -> row in the grouped buffers
  // Routed experts all have moe_intermediate_size columns, so gating runs once over all rows.
  const int64_t inter = experts.empty() ? 0 : experts[0].gate.rows();
  for (auto& e : experts)
    if (e.gate.rows() != inter || e.up.rows() != inter || e.down.cols() != inter)
      fail("moe_experts: experts differ in width ({} vs {})", e.gate.rows(), inter);

  AlignedBuffer xs(size_t(n_rows * H) * 4), gate(size_t(n_rows * inter) * 4), up(size_t(n_rows * inter) * 4),
      down(size_t(n_rows * H) * 4);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int64_t row = fill[size_t(expert_ids.row<const int32_t>(t)[j])]++;
      row_of[size_t(t * k + j)] = row;
      std::copy_n(x.row<const float>(t), H, xs.as<float>() + row * H);
    }
  auto rows_of = [&](const AlignedBuffer& b, int64_t cols, int e, int64_t width) {
    return Tensor{b.as<float>() + offset[size_t(e)] * cols, DType::f32, offset[size_t(e) + 1] - offset[size_t(e)],
                  width, cols};
  };
  std::vector<GemmProblem> problems;
  for (int e = 0; e < n_experts; ++e) {
    if (offset[size_t(e) + 1] == offset[size_t(e)]) continue;
    const auto& w = experts[size_t(e)];
    problems.push_back({rows_of(xs, H, e, H), w.gate, rows_of(gate, inter, e, w.gate.rows()), false});
    problems.push_back({rows_of(xs, H, e, H), w.up, rows_of(up, inter, e, w.up.rows()), false});
  }
  linear_batch(problems);
  problems.clear();
  Tensor all_gate = Tensor::matrix(gate.data(), DType::f32, n_rows, inter);
  silu_mul(all_gate, Tensor::matrix(up.data(), DType::f32, n_rows, inter), all_gate);
  for (int e = 0; e < n_experts; ++e) {
    if (offset[size_t(e) + 1] == offset[size_t(e)]) continue;
    const auto& w = experts[size_t(e)];
    problems.push_back({rows_of(gate, inter, e, w.down.cols()), w.down, rows_of(down, H, e, H), false});
  }
  linear_batch(problems);

  // Each token sums its experts in increasing expert order, as the reference does.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    std::vector<int64_t> slots(static_cast<size_t>(k));
    std::iota(slots.begin(), slots.end(), 0);
    const int32_t* ids = expert_ids.row<const int32_t>(t);
    std::sort(slots.begin(), slots.end(), [&](int64_t a, int64_t b) { return ids[a] < ids[b]; });
    float* o = out.row<float>(t);
    std::fill_n(o, H, 0.0f);
    for (int64_t j : slots) {
      const float w = expert_weights.row<const float>(t)[j];
      const float* d = down.as<float>() + row_of[size_t(t * k + j)] * H;
      for (int64_t i = 0; i < H; ++i) o[i] += w * d[i];
    }
  }
}

}  // namespace dsi::cpu
