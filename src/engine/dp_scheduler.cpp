#include "engine/dp_scheduler.h"

#include "core/error.h"
#include "core/log.h"

namespace dsi {

DpScheduler::DpScheduler(std::vector<KvBlockManager*> blocks, int max_num_seqs, int max_num_batched_tokens,
                         SchedulingPolicy policy)
    : blocks_(std::move(blocks)), placed_(blocks_.size(), 0) {
  if (blocks_.empty()) fail("DpScheduler: no KV pool");
  for (KvBlockManager* b : blocks_)
    ranks_.push_back(std::make_unique<Scheduler>(*b, max_num_seqs, max_num_batched_tokens, policy));
}

int DpScheduler::place(const Sequence&) const {
  int best = 0;
  int64_t best_load = -1, best_seqs = 0;
  for (int d = 0; d < n_ranks(); ++d) {
    const Scheduler& s = *ranks_[size_t(d)];
    const int64_t load = blocks_[size_t(d)]->stats().n_used + s.waiting_blocks();
    const int64_t seqs = s.n_running() + s.n_waiting();
    if (best_load < 0 || load < best_load || (load == best_load && seqs < best_seqs))
      best = d, best_load = load, best_seqs = seqs;
  }
  return best;
}

int DpScheduler::add(std::unique_ptr<Sequence> seq) {
  const int d = n_ranks() == 1 ? 0 : place(*seq);
  seq->dp_rank = d;
  ++placed_[size_t(d)];
  if (n_ranks() > 1)
    spdlog::info("request {} placed on DP rank {} (KV blocks in use or awaited there: {}; per rank: {})", seq->id, d,
                 blocks_[size_t(d)]->stats().n_used + ranks_[size_t(d)]->waiting_blocks(), [&] {
                   std::string s;
                   for (int r = 0; r < n_ranks(); ++r)
                     s += fmt::format("{}{}", r ? "/" : "",
                                      blocks_[size_t(r)]->stats().n_used + ranks_[size_t(r)]->waiting_blocks());
                   return s;
                 }());
  ranks_[size_t(d)]->add(std::move(seq));
  return d;
}

std::vector<std::vector<ScheduledSequence>> DpScheduler::schedule() {
  std::vector<std::vector<ScheduledSequence>> out;
  out.reserve(ranks_.size());
  for (auto& r : ranks_) out.push_back(r->schedule());
  return out;
}

std::unique_ptr<Sequence> DpScheduler::remove(RequestId id) {
  for (auto& r : ranks_)
    if (auto s = r->remove(id)) return s;
  return nullptr;
}

std::vector<RequestId> DpScheduler::ids() const {
  std::vector<RequestId> out;
  for (const auto& r : ranks_)
    for (RequestId id : r->ids()) out.push_back(id);
  return out;
}

int DpScheduler::n_running() const {
  int n = 0;
  for (const auto& r : ranks_) n += r->n_running();
  return n;
}
int DpScheduler::n_waiting() const {
  int n = 0;
  for (const auto& r : ranks_) n += r->n_waiting();
  return n;
}
int64_t DpScheduler::n_preemptions() const {
  int64_t n = 0;
  for (const auto& r : ranks_) n += r->n_preemptions();
  return n;
}
int64_t DpScheduler::prefix_queried_tokens() const {
  int64_t n = 0;
  for (const auto& r : ranks_) n += r->prefix_queried_tokens();
  return n;
}
int64_t DpScheduler::prefix_hit_tokens() const {
  int64_t n = 0;
  for (const auto& r : ranks_) n += r->prefix_hit_tokens();
  return n;
}

KvCacheStats DpScheduler::kv_stats() const {
  KvCacheStats sum;
  for (const KvBlockManager* b : blocks_) {
    const KvCacheStats s = b->stats();
    sum.n_blocks += s.n_blocks;
    sum.n_used += s.n_used;
    sum.n_cached += s.n_cached;
    sum.n_free += s.n_free;
  }
  return sum;
}

std::vector<DpRankStats> DpScheduler::rank_stats() const {
  std::vector<DpRankStats> out(ranks_.size());
  for (size_t d = 0; d < ranks_.size(); ++d)
    out[d] = {placed_[d], ranks_[d]->n_running(), ranks_[d]->n_waiting(), blocks_[d]->stats().n_used};
  return out;
}

}  // namespace dsi
