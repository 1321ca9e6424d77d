// The scheduler on its own (no model): the order requests are admitted in and the sequence
// chosen for preemption, under vLLM's two policies. fcfs: arrival order, the newest admitted
// preempted first. priority: lower priority values first, ties by arrival; the lowest-priority
// (latest-arrived among equals) running sequence preempted first.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <numeric>

namespace dsi {
namespace {

std::unique_ptr<Sequence> make_seq(RequestId id, int64_t priority, int n_prompt = 4) {
  EngineRequest r;
  r.prompt.resize(size_t(n_prompt));
  std::iota(r.prompt.begin(), r.prompt.end(), int32_t(100 * id));  // distinct: no prefix sharing
  r.priority = priority;
  return std::make_unique<Sequence>(id, std::move(r));
}

// One step as the engine runs it: schedule, then each scheduled sequence computed and, where
// it samples, one more token. Returns the ids scheduled, in batch order.
std::vector<RequestId> step(Scheduler& s) {
  std::vector<RequestId> ids;
  for (const ScheduledSequence& x : s.schedule()) {
    s.computed(x);
    if (x.samples) x.seq->tokens.push_back(7);
    ids.push_back(x.seq->id);
  }
  return ids;
}

// With one slot, the order in which queued requests get it.
std::vector<RequestId> service_order(SchedulingPolicy policy, const std::vector<int64_t>& priorities) {
  KvBlockManager blocks(64, 4, false);
  Scheduler s(blocks, 1, 1024, policy);
  for (size_t k = 0; k < priorities.size(); ++k) s.add(make_seq(RequestId(k + 1), priorities[k]));
  std::vector<RequestId> order;
  while (!s.empty()) {
    auto ids = step(s);
    EXPECT_EQ(ids.size(), 1u);
    order.push_back(ids[0]);
    s.remove(ids[0]);  // it finished
  }
  return order;
}

TEST(Scheduler, FcfsServesInArrivalOrderWhateverThePriority) {
  EXPECT_EQ(service_order(SchedulingPolicy::scheduling_fcfs, {2, 0, 1, 0}), (std::vector<RequestId>{1, 2, 3, 4}));
}

TEST(Scheduler, PriorityServesLowerValuesFirstTiesByArrival) {
  EXPECT_EQ(service_order(SchedulingPolicy::scheduling_priority, {2, 0, 1, 0, -3, 1}),
            (std::vector<RequestId>{5, 2, 4, 3, 6, 1}));
}

// Three 4-token prompts in a cache of four 4-token blocks: after their prefill each needs a
// second block for its next token, one is free, so one sequence must be preempted.
std::pair<RequestId, std::vector<RequestId>> preempted_one(SchedulingPolicy policy) {
  KvBlockManager blocks(4, 4, false);
  Scheduler s(blocks, 8, 1024, policy);
  s.add(make_seq(1, 1));  // arrivals 1, 2, 3; sequence 3 has the most urgent priority
  s.add(make_seq(2, 1));
  s.add(make_seq(3, 0));
  EXPECT_EQ(step(s).size(), 3u);  // all three prefilled
  std::vector<RequestId> ran = step(s);
  EXPECT_EQ(s.n_preemptions(), 1);
  EXPECT_EQ(s.n_running(), 2);
  EXPECT_EQ(s.n_waiting(), 1);
  return {s.ids().back(), ran};  // ids(): running, then waiting
}

TEST(Scheduler, FcfsPreemptsTheNewestAdmitted) {
  auto [victim, ran] = preempted_one(SchedulingPolicy::scheduling_fcfs);
  EXPECT_EQ(victim, 3u);
  EXPECT_EQ(ran, (std::vector<RequestId>{1, 2}));
}

TEST(Scheduler, PriorityPreemptsTheLowestPriorityLatestArrived) {
  auto [victim, ran] = preempted_one(SchedulingPolicy::scheduling_priority);
  EXPECT_EQ(victim, 2u);                           // priority 1 as sequence 1, but it arrived later
  EXPECT_EQ(ran, (std::vector<RequestId>{3, 1}));  // the batch in priority order
}

// A preempted sequence rejoins the queue at its priority's place, ahead of less urgent ones
// that arrived before it was preempted, behind more urgent ones.
TEST(Scheduler, APreemptedSequenceRejoinsAtItsPriority) {
  KvBlockManager blocks(4, 4, false);
  Scheduler s(blocks, 3, 1024, SchedulingPolicy::scheduling_priority);
  s.add(make_seq(1, 1));
  s.add(make_seq(2, 1));
  s.add(make_seq(3, 0));
  step(s);
  s.add(make_seq(4, 5));   // less urgent than the victim
  s.add(make_seq(5, -1));  // more urgent
  step(s);                 // sequence 2 preempted
  auto ids = s.ids();
  EXPECT_EQ(ids, (std::vector<RequestId>{3, 1, 5, 2, 4}));
}

}  // namespace
}  // namespace dsi
