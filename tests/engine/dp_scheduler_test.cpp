// DpScheduler: where requests go under data-parallel attention, and that they stay there.
#include <gtest/gtest.h>

#include "engine/dp_scheduler.h"

namespace dsi {
namespace {

std::unique_ptr<Sequence> seq(RequestId id, int n_tokens) {
  EngineRequest r;
  r.prompt.assign(size_t(n_tokens), 1);
  r.on_output = [](RequestOutput&&) {};
  return std::make_unique<Sequence>(id, std::move(r));
}

std::vector<RequestId> ids_of(const std::vector<ScheduledSequence>& plan) {
  std::vector<RequestId> out;
  for (const auto& s : plan) out.push_back(s.seq->id);
  return out;
}

TEST(DpScheduler, PlacesOnTheRankWithTheLeastKvInUseOrAwaited) {
  KvBlockManager a(16, 4, false), b(16, 4, false);
  DpScheduler s({&a, &b}, 8, 64);
  // Nothing allocated yet: the waiting prompts' blocks count, or a burst would all go to rank 0.
  EXPECT_EQ(s.add(seq(1, 10)), 0);  // rank 0: 3 blocks awaited
  EXPECT_EQ(s.add(seq(2, 2)), 1);   // rank 1: 1
  EXPECT_EQ(s.add(seq(3, 5)), 1);   // 3 vs 1: rank 1, now 3
  EXPECT_EQ(s.add(seq(4, 4)), 0);   // 3 vs 3, 1 sequence vs 2: rank 0
  const auto plans = s.schedule();
  ASSERT_EQ(plans.size(), 2u);
  EXPECT_EQ(ids_of(plans[0]), (std::vector<RequestId>{1, 4}));
  EXPECT_EQ(ids_of(plans[1]), (std::vector<RequestId>{2, 3}));
  EXPECT_EQ(a.stats().n_used, 4);  // each rank's blocks come from its own pool
  EXPECT_EQ(b.stats().n_used, 3);
  for (const auto& p : plans)
    for (const auto& x : p) s.computed(x);
  // Now by blocks held: rank 1 holds fewer.
  EXPECT_EQ(s.add(seq(5, 1)), 1);
  const auto st = s.rank_stats();
  EXPECT_EQ(st[0].requests_placed, 2);
  EXPECT_EQ(st[1].requests_placed, 3);
  EXPECT_EQ(s.kv_stats().n_blocks, 32);
}

TEST(DpScheduler, APreemptedSequenceStaysOnItsRank) {
  KvBlockManager a(2, 4, false), b(2, 4, false);
  DpScheduler s({&a, &b}, 8, 64);
  auto first = seq(1, 4), second = seq(2, 4), third = seq(3, 4);
  Sequence* s1 = first.get();
  Sequence* s2 = second.get();
  Sequence* s3 = third.get();
  ASSERT_EQ(s.add(std::move(first)), 0);
  ASSERT_EQ(s.add(std::move(second)), 1);
  ASSERT_EQ(s.add(std::move(third)), 0);
  auto plans = s.schedule();
  EXPECT_EQ(ids_of(plans[0]), (std::vector<RequestId>{1, 3}));
  for (const auto& p : plans)
    for (const auto& x : p) s.computed(x);
  // Rank 0's pool (2 blocks) is full; both its sequences need a second block: the newest
  // one (3) is preempted, back to rank 0's own queue, while rank 1 is unaffected.
  for (Sequence* x : {s1, s2, s3}) x->tokens.push_back(7);  // each sampled a token
  plans = s.schedule();
  EXPECT_EQ(ids_of(plans[0]), (std::vector<RequestId>{1}));
  EXPECT_EQ(ids_of(plans[1]), (std::vector<RequestId>{2}));  // its own pool has room
  EXPECT_EQ(s.n_preemptions(), 1);
  EXPECT_EQ(s3->dp_rank, 0);
  EXPECT_EQ(s.rank_stats()[0].n_waiting, 1);
  EXPECT_EQ(s.rank_stats()[1].n_waiting, 0);
  for (const auto& p : plans)
    for (const auto& x : p) s.computed(x);
  // Sequence 1 ends: 3 is recomputed on rank 0, though rank 1 has room.
  s.remove(1);
  plans = s.schedule();
  EXPECT_EQ(ids_of(plans[0]), (std::vector<RequestId>{3}));
  EXPECT_EQ(plans[0][0].n_new, 5);  // its whole context again
}

}  // namespace
}  // namespace dsi
