#pragma once
// Tokens routed to each expert of each MoE layer over a sliding window of engine steps, for
// the /metrics expert-load series. An imbalanced router is invisible in throughput figures
// until expert parallelism makes every layer wait for its busiest expert; this is where it
// shows first. Not thread-safe: the engine thread adds, the engine copies snapshots out.
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

namespace dsi {

// One window's totals. `tokens` is [moe_layers.size(), n_experts], row i for layer moe_layers[i].
struct ExpertLoad {
  int n_experts = 0;
  int n_steps = 0;               // steps in the window (at most the window's length)
  std::vector<int> moe_layers;   // model layer indices, ascending
  std::vector<int64_t> tokens;   // token-to-expert assignments (each token counts top_k times)

  std::span<const int64_t> row(size_t i) const { return std::span(tokens).subspan(i * size_t(n_experts), size_t(n_experts)); }
};

// max / mean of one layer's counts: 1 is perfectly balanced, n_experts is everything on one
// expert; 0 when the layer saw no tokens.
double expert_imbalance(std::span<const int64_t> counts);
// Over all layers: sum of per-layer maxima over sum of per-layer means. A step under expert
// parallelism takes about as long as each layer's busiest expert, so this is the slowdown
// against perfect balance; 0 when no layer saw tokens.
double expert_imbalance_overall(const ExpertLoad& load);

class ExpertLoadWindow {
 public:
  // `n_window_steps` >= 1; `moe_layers` are the layers whose rows add() reads.
  ExpertLoadWindow(int n_layers, int n_experts, std::vector<int> moe_layers, int n_window_steps);
  // One step's counts, [n_layers * n_experts] as the model's workspace holds them (dense
  // layers' rows are ignored). The oldest step leaves the window once it is full.
  void add(std::span<const int32_t> step_counts);
  const ExpertLoad& load() const { return load_; }

 private:
  int n_layers_;
  int n_window_steps_;
  std::deque<std::vector<int32_t>> steps_;  // the window's steps, MoE rows only, oldest first
  ExpertLoad load_;
};

}  // namespace dsi
