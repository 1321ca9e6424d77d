#include "model/expert_exchange.h"

#include <algorithm>
#include <numeric>

#include "backend/ops.h"
#include "core/error.h"

namespace dsi {

ExchangeOrder exchange_order(std::span<const int32_t> recv_counts, int n_ranks, int n_local) {
  if (int64_t(recv_counts.size()) != int64_t(n_ranks) * n_local)
    fail("expert exchange: {} received counts for {} ranks x {} experts", recv_counts.size(), n_ranks, n_local);
  ExchangeOrder o;
  o.offsets.assign(size_t(n_local + 1), 0);
  for (int s = 0; s < n_ranks; ++s)
    for (int e = 0; e < n_local; ++e) o.offsets[size_t(e + 1)] += recv_counts[size_t(s * n_local + e)];
  for (int e = 0; e < n_local; ++e) o.offsets[size_t(e + 1)] += o.offsets[size_t(e)];
  const size_t n = size_t(o.offsets.back());
  o.to_expert_major.resize(n);
  o.to_source_major.resize(n);
  std::vector<int32_t> fill(o.offsets.begin(), o.offsets.end() - 1);  // next expert-major row per expert
  int32_t at = 0;                                                     // source-major row
  for (int s = 0; s < n_ranks; ++s)
    for (int e = 0; e < n_local; ++e)
      for (int32_t i = 0; i < recv_counts[size_t(s * n_local + e)]; ++i, ++at) {
        const int32_t em = fill[size_t(e)]++;
        o.to_expert_major[size_t(em)] = at;
        o.to_source_major[size_t(at)] = em;
      }
  return o;
}

ExpertExchange::ExpertExchange(Backend& backend, int n_experts, int n_ranks, int64_t hidden, int64_t expert_width)
    : be_(backend), n_experts_(n_experts), n_ranks_(n_ranks), n_local_(n_ranks > 0 ? n_experts / n_ranks : 0),
      hidden_(hidden), width_(expert_width) {
  if (n_ranks < 1 || n_experts % n_ranks != 0)
    fail("expert exchange: {} routed experts do not split over {} ranks", n_experts, n_ranks);
  offsets_ = be_.alloc(DType::i32, 1, n_local_ + 1);
  recv_counts_.assign(size_t(n_ranks_ * n_local_), 0);
  count_bytes_.assign(size_t(n_ranks_), int64_t(n_local_) * int64_t(sizeof(int32_t)));
  send_rows_.assign(size_t(n_ranks_), 0);
  recv_rows_.assign(size_t(n_ranks_), 0);
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
  to_expert_ = be_.alloc(DType::i32, n, 1);
  to_source_ = be_.alloc(DType::i32, n, 1);
  capacity_ = n;
}

void ExpertExchange::run(DeviceCollectives& world, const ExpertMlpWeights& mine, const Tensor& x_sorted,
                         std::span<const int32_t> counts, Tensor y_sorted) {
  if (world.size() != n_ranks_) fail("expert exchange: a group of {} ranks, expected {}", world.size(), n_ranks_);
  if (int(counts.size()) != n_experts_) fail("expert exchange: {} expert counts, expected {}", counts.size(), n_experts_);
  if (mine.gate.n_experts() != n_local_)
    fail("expert exchange: this rank holds {} experts, expected {}", mine.gate.n_experts(), n_local_);
  const int64_t m = x_sorted.rows;
  if (std::accumulate(counts.begin(), counts.end(), int64_t(0)) != m || y_sorted.rows != m)
    fail("expert exchange: expert counts and rows disagree ({} rows)", m);

  // 1. How many rows each of a peer's experts gets from this rank (counts are in peer order:
  // peer p owns experts [p * n_local, (p + 1) * n_local)). Host memory, host communicator.
  world.host().all_to_all(std::as_bytes(counts), count_bytes_, std::as_writable_bytes(std::span(recv_counts_)),
                          count_bytes_);
  int64_t n_recv = 0;
  for (int p = 0; p < n_ranks_; ++p) {
    send_rows_[size_t(p)] =
        std::accumulate(counts.begin() + p * n_local_, counts.begin() + (p + 1) * n_local_, int64_t(0));
    recv_rows_[size_t(p)] = std::accumulate(recv_counts_.begin() + p * n_local_,
                                            recv_counts_.begin() + (p + 1) * n_local_, int64_t(0));
    n_recv += recv_rows_[size_t(p)];
  }
  // At least one row: the slices below need the buffers' width even when nothing arrives.
  reserve(std::max<int64_t>(n_recv, 1));
  Tensor arrived = y_.t.slice_rows(0, n_recv), x = x_.t.slice_rows(0, n_recv), y = y_.t.slice_rows(0, n_recv);

  // 2. The rows themselves, source-major on arrival (y_ is free until the experts write it).
  world.all_to_all(x_sorted, send_rows_, arrived, recv_rows_);

  // 3. This rank's experts over every row it received, grouped by expert (rows of one expert in
  // source-rank order), then the outputs put back in arrival order (into x_, free again).
  if (n_recv > 0) {
    // order_ is the copies' source until the synchronize at the end.
    order_ = exchange_order(recv_counts_, n_ranks_, n_local_);
    Tensor to_expert = to_expert_.t.slice_rows(0, n_recv), to_source = to_source_.t.slice_rows(0, n_recv);
    be_.copy_from_host(order_.offsets.data(), offsets_.t);
    be_.copy_from_host(order_.to_expert_major.data(), to_expert);
    be_.copy_from_host(order_.to_source_major.data(), to_source);
    ops::gather_rows(be_, arrived, to_expert, x);
    ops::moe_grouped_mlp(be_, x, offsets_.t, mine, gate_.t.slice_rows(0, n_recv), up_.t.slice_rows(0, n_recv), y);
    ops::gather_rows(be_, y, to_source, x);
  }

  // 4. The results back to their senders, into the sender's sorted order.
  world.all_to_all(x, recv_rows_, y_sorted, send_rows_);
  // Nothing of this call stays in flight: the next one rewrites order_ and the buffers.
  be_.synchronize();
}

}  // namespace dsi
