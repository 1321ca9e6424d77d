#include "engine/expert_load.h"

#include <algorithm>

#include "core/error.h"

namespace dsi {

double expert_imbalance(std::span<const int64_t> counts) {
  if (counts.empty()) return 0;
  int64_t sum = 0, max = 0;
  for (int64_t c : counts) {
    sum += c;
    max = std::max(max, c);
  }
  if (sum == 0) return 0;
  return double(max) * double(counts.size()) / double(sum);
}

double expert_imbalance_overall(const ExpertLoad& load) {
  double sum_max = 0, sum_mean = 0;
  for (size_t i = 0; i < load.moe_layers.size(); ++i) {
    auto row = load.row(i);
    int64_t sum = 0, max = 0;
    for (int64_t c : row) {
      sum += c;
      max = std::max(max, c);
    }
    sum_max += double(max);
    sum_mean += double(sum) / double(load.n_experts);
  }
  return sum_mean > 0 ? sum_max / sum_mean : 0;
}

ExpertLoadWindow::ExpertLoadWindow(int n_layers, int n_experts, std::vector<int> moe_layers, int n_window_steps)
    : n_layers_(n_layers), n_window_steps_(n_window_steps) {
  if (n_window_steps < 1) fail("expert load window of {} steps: must be at least 1", n_window_steps);
  for (int l : moe_layers)
    if (l < 0 || l >= n_layers) fail("expert load: MoE layer {} outside the model's {} layers", l, n_layers);
  load_.n_experts = n_experts;
  load_.moe_layers = std::move(moe_layers);
  load_.tokens.assign(load_.moe_layers.size() * size_t(n_experts), 0);
}

void ExpertLoadWindow::add(std::span<const int32_t> step_counts) {
  const size_t e = size_t(load_.n_experts);
  if (step_counts.size() != size_t(n_layers_) * e)
    fail("expert counts of {} values for {} layers x {} experts", step_counts.size(), n_layers_, e);
  std::vector<int32_t> rows(load_.tokens.size());
  for (size_t i = 0; i < load_.moe_layers.size(); ++i)
    std::copy_n(step_counts.begin() + std::ptrdiff_t(size_t(load_.moe_layers[i]) * e), e,
                rows.begin() + std::ptrdiff_t(i * e));
  // Running sums: add the new step, subtract the one leaving, so a scrape never re-adds the window.
  for (size_t k = 0; k < rows.size(); ++k) load_.tokens[k] += rows[k];
  steps_.push_back(std::move(rows));
  if (int(steps_.size()) > n_window_steps_) {
    const auto& old = steps_.front();
    for (size_t k = 0; k < old.size(); ++k) load_.tokens[k] -= old[k];
    steps_.pop_front();
  }
  load_.n_steps = int(steps_.size());
}

}  // namespace dsi
