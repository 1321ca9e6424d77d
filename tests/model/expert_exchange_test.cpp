// The DP expert exchange's pieces that one process can check: the regrouping index
// (exchange_order) against the host reorder the exchange used before it moved to the backend,
// and a whole exchange in a world of one on the CPU backend, which must give exactly the
// experts run locally. (Several ranks: tests/parallel/test_data_parallel.py under mpirun; on a
// GPU over NCCL: tests/parallel/nccl_collectives_test.cpp.)
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>

#include "backend/backend_factory.h"
#include "backend/ops.h"
#include "model/expert_exchange.h"

namespace dsi {
namespace {

// The exchange's host reorder before the device regrouping (expert_exchange.cpp until the
// NCCL path), kept as the reference: rows arrive per source rank then expert; the experts see
// them per expert then source rank.
void reference_reorder(std::span<const int32_t> recv_counts, int n_ranks, int n_local, const float* from, float* to,
                       size_t row_floats, bool to_expert_major) {
  std::vector<int64_t> offsets(size_t(n_local + 1), 0);
  for (int e = 0; e < n_local; ++e) {
    int64_t n = 0;
    for (int s = 0; s < n_ranks; ++s) n += recv_counts[size_t(s * n_local + e)];
    offsets[size_t(e + 1)] = offsets[size_t(e)] + n;
  }
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  int64_t at = 0;
  for (int s = 0; s < n_ranks; ++s)
    for (int e = 0; e < n_local; ++e) {
      const int64_t n = recv_counts[size_t(s * n_local + e)];
      if (n == 0) continue;  // (an empty batch's buffers may be null: memcpy must not see them)
      const int64_t em = fill[size_t(e)];
      const size_t bytes = size_t(n) * row_floats * 4;
      if (to_expert_major) std::memcpy(to + size_t(em) * row_floats, from + size_t(at) * row_floats, bytes);
      else std::memcpy(to + size_t(at) * row_floats, from + size_t(em) * row_floats, bytes);
      fill[size_t(e)] += n;
      at += n;
    }
}

TEST(ExpertExchange, RegroupingIndexEqualsTheHostReorder) {
  std::mt19937 rng(11);
  const size_t row = 3;
  for (auto [n_ranks, n_local] : {std::pair{1, 4}, {2, 3}, {3, 4}, {4, 1}}) {
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<int32_t> counts(size_t(n_ranks * n_local));
      for (auto& c : counts) c = int32_t(rng() % 4);  // zeros included
      if (trial == 0) std::fill(counts.begin(), counts.end(), 0);
      const ExchangeOrder o = exchange_order(counts, n_ranks, n_local);
      const size_t n = size_t(std::accumulate(counts.begin(), counts.end(), 0));
      ASSERT_EQ(o.offsets.size(), size_t(n_local + 1));
      EXPECT_EQ(size_t(o.offsets.back()), n);
      std::vector<float> arrived(n * row), want(n * row), got(n * row), back(n * row), want_back(n * row);
      std::iota(arrived.begin(), arrived.end(), 0.0f);
      reference_reorder(counts, n_ranks, n_local, arrived.data(), want.data(), row, true);
      for (size_t i = 0; i < n; ++i)
        std::memcpy(&got[i * row], &arrived[size_t(o.to_expert_major[i]) * row], row * 4);
      EXPECT_EQ(got, want) << n_ranks << " ranks x " << n_local << " experts, trial " << trial;
      reference_reorder(counts, n_ranks, n_local, want.data(), want_back.data(), row, false);
      for (size_t j = 0; j < n; ++j)
        std::memcpy(&back[j * row], &got[size_t(o.to_source_major[j]) * row], row * 4);
      EXPECT_EQ(back, want_back);
      EXPECT_EQ(back, arrived);
    }
  }
  EXPECT_THROW(exchange_order(std::vector<int32_t>(5, 1), 2, 3), Error);
}

// A world of one: every expert is this rank's, the rows go to itself and back, and the output
// must be exactly what moe_grouped_mlp gives over the same rows.
TEST(ExpertExchange, OneRankEqualsTheExpertsRunLocally) {
  auto be = make_cpu_backend();
  const int n_experts = 4;
  const int64_t hidden = 8, width = 6;
  const std::vector<int32_t> counts = {3, 0, 2, 5};
  const int64_t m = 10;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  auto random = [&](int64_t rows, int64_t cols) {
    Buffer b = be->alloc(DType::f32, rows, cols);
    for (int64_t i = 0; i < rows * cols; ++i) b.t.row<float>(0)[i] = u(rng);
    return b;
  };
  std::vector<Buffer> keep;
  ExpertMlpWeights experts;
  for (int e = 0; e < n_experts; ++e)
    for (auto [w, rows, cols] : {std::tuple{&experts.gate, width, hidden}, {&experts.up, width, hidden},
                                 {&experts.down, hidden, width}}) {
      keep.push_back(random(rows, cols));
      Weight one;
      one.w = keep.back().t;
      w->experts.push_back(one);
    }
  Buffer x = random(m, hidden), y = be->alloc(DType::f32, m, hidden), want = be->alloc(DType::f32, m, hidden);
  Buffer gate = be->alloc(DType::f32, m, width), up = be->alloc(DType::f32, m, width);
  Buffer offsets = be->alloc(DType::i32, 1, n_experts + 1);
  offsets.t.row<int32_t>(0)[0] = 0;
  for (int e = 0; e < n_experts; ++e)
    offsets.t.row<int32_t>(0)[e + 1] = offsets.t.row<int32_t>(0)[e] + counts[size_t(e)];
  ops::moe_grouped_mlp(*be, x.t, offsets.t, experts, gate.t, up.t, want.t);

  HostStagedCollectives world(std::make_shared<SelfCommunicator>("world"), *be);
  ExpertExchange exchange(*be, n_experts, 1, hidden, width);
  std::fill(y.t.row<float>(0), y.t.row<float>(0) + m * hidden, -1.0f);
  exchange.run(world, experts, x.t, counts, y.t);
  EXPECT_EQ(std::memcmp(y.t.data, want.t.data, size_t(m * hidden) * 4), 0);
  // An idle step (no rows of its own, none sent to it) exchanges nothing.
  const std::vector<int32_t> none(size_t(n_experts), 0);
  exchange.run(world, experts, x.t.slice_rows(0, 0), none, y.t.slice_rows(0, 0));
  EXPECT_THROW(exchange.run(world, experts, x.t, none, y.t), Error);  // counts disagree with the rows
}

}  // namespace
}  // namespace dsi
