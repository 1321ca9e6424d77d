#pragma once
// The MoE exchange of data-parallel attention (docs/design/parallel.md, "DP attention"): every
// rank holds its own tokens and owns n_experts / n_ranks routed experts. A rank's choice rows,
// sorted by global expert id (moe_dispatch), are contiguous per owner rank; they go to their
// owners by one all-to-all with per-peer counts (preceded by a small one carrying how many
// rows each expert gets), the owner runs its experts once over everything it received (one
// moe_grouped_mlp), and the results go back by a third all-to-all into the sender's sorted
// order, so the sender combines (moe_combine) exactly as one process does. Staged through host
// memory, so it works on every backend with the host (MPI) communicator.
//
// Every rank calls run() once per MoE layer per step, also with no tokens of its own (it still
// serves the others' rows for its experts). The routing weights never travel: the combine is
// the sender's.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "parallel/communicator.h"

namespace dsi {

class ExpertExchange {
 public:
  // n_experts global routed experts, split evenly over n_ranks; rows of `hidden` activations
  // of the backend's activation dtype; experts of intermediate width `expert_width`.
  ExpertExchange(Backend& backend, int n_experts, int n_ranks, int64_t hidden, int64_t expert_width);

  // x_sorted: this rank's choice rows sorted by global expert id (0 rows on an idle rank);
  // counts: rows per global expert (n_experts entries, summing to x_sorted.rows); `mine`: this
  // rank's experts. y_sorted (same shape as x_sorted) gets each row's expert output.
  void run(Communicator& world, const ExpertMlpWeights& mine, const Tensor& x_sorted, std::span<const int32_t> counts,
           Tensor y_sorted);

 private:
  void reserve(int64_t rows);
  // Copies the received rows between source-major (as they arrive: per source rank, then
  // expert) and expert-major order (per local expert, then source rank: one group per expert).
  void reorder(const std::byte* from, std::byte* to, bool to_expert_major);

  Backend& be_;
  int n_experts_, n_ranks_, n_local_;
  int64_t hidden_, width_;
  size_t row_bytes_;
  int64_t capacity_ = 0;  // rows the backend buffers hold
  Buffer x_, gate_, up_, y_, offsets_;
  std::vector<std::byte> send_, recv_, local_;
  std::vector<int32_t> recv_counts_, offsets_host_;
  std::vector<int64_t> count_bytes_, send_bytes_, recv_bytes_;
};

}  // namespace dsi
