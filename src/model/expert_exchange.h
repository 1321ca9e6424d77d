#pragma once
// The MoE exchange of data-parallel attention (docs/design/parallel.md, "DP attention"): every
// rank holds its own tokens and owns n_experts / n_ranks routed experts. A rank's choice rows,
// sorted by global expert id (moe_dispatch), are contiguous per owner rank; they go to their
// owners by one all-to-all with per-peer counts (preceded by a small one, over the host
// communicator, carrying how many rows each expert gets), the owner runs its experts once over
// everything it received (one moe_grouped_mlp), and the results go back by a third all-to-all
// into the sender's sorted order, so the sender combines (moe_combine) exactly as one process
// does. The rows travel through the device collectives (device_collectives.h): GPU to GPU
// over NCCL, or staged through host memory; they are regrouped on the backend with gather_rows.
//
// Every rank calls run() once per MoE layer per step, also with no tokens of its own (it still
// serves the others' rows for its experts). The routing weights never travel: the combine is
// the sender's.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "parallel/device_collectives.h"

namespace dsi {

// How an owner regroups what it received. Rows arrive source-major (per source rank, then
// per local expert: recv_counts[s * n_local + e] rows of expert e from rank s); the experts
// run expert-major (per expert, then source rank: one contiguous group per expert).
struct ExchangeOrder {
  std::vector<int32_t> offsets;            // n_local + 1: expert e's rows are [offsets[e], offsets[e + 1])
  std::vector<int32_t> to_expert_major;    // expert-major row i is source-major row to_expert_major[i]
  std::vector<int32_t> to_source_major;    // source-major row j is expert-major row to_source_major[j]
};
ExchangeOrder exchange_order(std::span<const int32_t> recv_counts, int n_ranks, int n_local);

class ExpertExchange {
 public:
  // n_experts global routed experts, split evenly over n_ranks; rows of `hidden` activations
  // of the backend's activation dtype; experts of intermediate width `expert_width`.
  ExpertExchange(Backend& backend, int n_experts, int n_ranks, int64_t hidden, int64_t expert_width);

  // x_sorted: this rank's choice rows sorted by global expert id (0 rows on an idle rank);
  // counts: rows per global expert (n_experts entries, summing to x_sorted.rows); `mine`: this
  // rank's experts. y_sorted (same shape as x_sorted) gets each row's expert output. Collective
  // over `world` (all ranks, world rank = owner rank); returns with every copy done.
  void run(DeviceCollectives& world, const ExpertMlpWeights& mine, const Tensor& x_sorted,
           std::span<const int32_t> counts, Tensor y_sorted);

 private:
  void reserve(int64_t rows);

  Backend& be_;
  int n_experts_, n_ranks_, n_local_;
  int64_t hidden_, width_;
  int64_t capacity_ = 0;  // rows the backend buffers hold
  // Backend memory. y_: the rows as they arrive, then the experts' output; x_: the experts'
  // input, then their output back in arrival order (what returns); the intermediates, the
  // expert offsets and the two row indices of the regrouping.
  Buffer x_, gate_, up_, y_, offsets_, to_expert_, to_source_;
  std::vector<int32_t> recv_counts_;
  ExchangeOrder order_;  // this call's regrouping, the source of its index uploads
  std::vector<int64_t> count_bytes_, send_rows_, recv_rows_;
};

}  // namespace dsi
