#include "model/expert_exchange.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "backend/ops.h"
#include "core/error.h"

namespace dsi {

ExpertExchange::ExpertExchange(Backend& backend, int n_experts, int n_ranks, int64_t hidden, int64_t expert_width)
    : be_(backend), n_experts_(n_experts), n_ranks_(n_ranks), n_local_(n_ranks > 0 ? n_experts / n_ranks : 0),
      hidden_(hidden), width_(expert_width),
      row_bytes_(size_t(hidden) * dtype_size(backend.activation_dtype())) {
  if (n_ranks < 1 || n_experts % n_ranks != 0)
    fail("expert exchange: {} routed experts do not split over {} ranks", n_experts, n_ranks);
  offsets_ = be_.alloc(DType::i32, 1, n_local_ + 1);
  offsets_host_.assign(size_t(n_local_ + 1), 0);
  recv_counts_.assign(size_t(n_ranks_ * n_local_), 0);
  count_bytes_.assign(size_t(n_ranks_), int64_t(n_local_) * int64_t(sizeof(int32_t)));
  send_bytes_.assign(size_t(n_ranks_), 0);
  recv_bytes_.assign(size_t(n_ranks_), 0);
}

void ExpertExchange::reserve(int64_t rows) {
  if (rows <= capacity_) return;
  // Grows geometrically: a few allocations over a run, none in the steady state.
  const int64_t n = std::max(rows, 2 * capacity_);
  const DType act = be_.activation_dtype();
  x_ = be_.alloc(act, n, hidden_);
  y_ = be_.alloc(act, n, hidden_);
  gate_ = be_.alloc(act, n, width_);
  up_ = be_.alloc(act, n, width_);
  capacity_ = n;
}

void ExpertExchange::reorder(const std::byte* from, std::byte* to, bool to_expert_major) {
  std::vector<int64_t> fill(offsets_host_.begin(), offsets_host_.end() - 1);
  int64_t at = 0;  // source-major row
  for (int s = 0; s < n_ranks_; ++s)
    for (int e = 0; e < n_local_; ++e) {
      const int64_t n = recv_counts_[size_t(s * n_local_ + e)];
      const int64_t em = fill[size_t(e)];  // expert-major row
      const size_t bytes = size_t(n) * row_bytes_;
      if (to_expert_major) std::memcpy(to + size_t(em) * row_bytes_, from + size_t(at) * row_bytes_, bytes);
      else std::memcpy(to + size_t(at) * row_bytes_, from + size_t(em) * row_bytes_, bytes);
      fill[size_t(e)] += n;
      at += n;
    }
}

void ExpertExchange::run(Communicator& world, const ExpertMlpWeights& mine, const Tensor& x_sorted,
                         std::span<const int32_t> counts, Tensor y_sorted) {
  if (world.size() != n_ranks_) fail("expert exchange: a group of {} ranks, expected {}", world.size(), n_ranks_);
  if (int(counts.size()) != n_experts_) fail("expert exchange: {} expert counts, expected {}", counts.size(), n_experts_);
  if (mine.gate.n_experts() != n_local_)
    fail("expert exchange: this rank holds {} experts, expected {}", mine.gate.n_experts(), n_local_);
  const int64_t m = x_sorted.rows;
  if (std::accumulate(counts.begin(), counts.end(), int64_t(0)) != m || y_sorted.rows != m)
    fail("expert exchange: expert counts and rows disagree ({} rows)", m);

  // 1. How many rows each of a peer's experts gets from this rank (counts are in peer order:
  // peer p owns experts [p * n_local, (p + 1) * n_local)).
  world.all_to_all(std::as_bytes(counts), count_bytes_, std::as_writable_bytes(std::span(recv_counts_)), count_bytes_);

  // 2. The rows themselves.
  send_.resize(size_t(m) * row_bytes_);
  if (m > 0) be_.copy_to_host(x_sorted, send_.data());
  int64_t n_recv = 0;
  for (int p = 0; p < n_ranks_; ++p) {
    const int64_t out = std::accumulate(counts.begin() + p * n_local_, counts.begin() + (p + 1) * n_local_, int64_t(0));
    const int64_t in = std::accumulate(recv_counts_.begin() + p * n_local_, recv_counts_.begin() + (p + 1) * n_local_,
                                       int64_t(0));
    send_bytes_[size_t(p)] = out * int64_t(row_bytes_);
    recv_bytes_[size_t(p)] = in * int64_t(row_bytes_);
    n_recv += in;
  }
  recv_.resize(size_t(n_recv) * row_bytes_);
  world.all_to_all(send_, send_bytes_, recv_, recv_bytes_);

  // 3. This rank's experts over every row it received, grouped by expert (rows of one expert
  // in source-rank order).
  if (n_recv > 0) {
    offsets_host_[0] = 0;
    for (int e = 0; e < n_local_; ++e) {
      int64_t n = 0;
      for (int s = 0; s < n_ranks_; ++s) n += recv_counts_[size_t(s * n_local_ + e)];
      offsets_host_[size_t(e + 1)] = offsets_host_[size_t(e)] + int32_t(n);
    }
    local_.resize(recv_.size());
    reorder(recv_.data(), local_.data(), true);
    reserve(n_recv);
    Tensor x = x_.t.slice_rows(0, n_recv), y = y_.t.slice_rows(0, n_recv);
    be_.copy_from_host(local_.data(), x);
    be_.copy_from_host(offsets_host_.data(), offsets_.t);
    ops::moe_grouped_mlp(be_, x, offsets_.t, mine, gate_.t.slice_rows(0, n_recv), up_.t.slice_rows(0, n_recv), y);
    be_.copy_to_host(y, local_.data());
    reorder(local_.data(), recv_.data(), false);
  }

  // 4. The results back to their senders, into the sender's sorted order.
  world.all_to_all(recv_, recv_bytes_, send_, send_bytes_);
  if (m > 0) {
    be_.copy_from_host(send_.data(), y_sorted);
    // send_ is reused (and may be resized) by the next layer: the copy must be done first.
    be_.synchronize();
  }
}

}  // namespace dsi
