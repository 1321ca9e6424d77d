#pragma once
// Scheduling for data-parallel attention (docs/design/parallel.md, "Placement"): one Scheduler
// per DP rank, each over that rank's own KV pool. A request is placed on one DP rank when it
// arrives, the one with the least KV in use (blocks held by its sequences plus the blocks its
// waiting prompts will need; ties: fewer sequences, then the lower rank), and stays there for
// its whole life: preemption puts it back in its own rank's queue and its recompute runs
// there. Each step every rank's scheduler forms that rank's batch (possibly empty). Without
// DP attention it is one Scheduler, exactly as before. Owned by the engine's thread.
#include <memory>
#include <vector>

#include "engine/scheduler.h"

namespace dsi {

struct DpRankStats {
  int64_t requests_placed = 0;  // requests placed on this rank since startup
  int n_running = 0;
  int n_waiting = 0;
  int64_t kv_blocks_used = 0;
};

class DpScheduler {
 public:
  // One Scheduler per block manager (DP rank d's pool is blocks[d]), each with `policy`.
  DpScheduler(std::vector<KvBlockManager*> blocks, int max_num_seqs, int max_num_batched_tokens,
              SchedulingPolicy policy = SchedulingPolicy::scheduling_fcfs);

  int n_ranks() const { return int(ranks_.size()); }
  // Places the sequence (sets seq->dp_rank) and queues it there; returns the rank.
  int add(std::unique_ptr<Sequence> seq);
  // This step's work of every DP rank, [rank][...].
  std::vector<std::vector<ScheduledSequence>> schedule();
  void computed(const ScheduledSequence& s) { ranks_[size_t(s.seq->dp_rank)]->computed(s); }
  std::unique_ptr<Sequence> remove(RequestId id);

  std::vector<RequestId> ids() const;
  int n_running() const;
  int n_waiting() const;
  int64_t n_preemptions() const;
  int64_t prefix_queried_tokens() const;
  int64_t prefix_hit_tokens() const;
  KvCacheStats kv_stats() const;  // summed over the ranks' pools
  std::vector<DpRankStats> rank_stats() const;

 private:
  int place(const Sequence& seq) const;

  std::vector<KvBlockManager*> blocks_;
  std::vector<std::unique_ptr<Scheduler>> ranks_;
  std::vector<int64_t> placed_;
};

}  // namespace dsi
