#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace dsi {

Scheduler::Scheduler(KvBlockManager& blocks, int max_num_seqs, int max_num_batched_tokens, SchedulingPolicy policy)
    : blocks_(blocks), max_num_seqs_(max_num_seqs), max_num_batched_tokens_(max_num_batched_tokens), policy_(policy) {
  if (max_num_seqs < 1) fail("--max-num-seqs must be at least 1, got {}", max_num_seqs);
  if (max_num_batched_tokens < 1)
    fail("--max-num-batched-tokens must be at least 1, got {}", max_num_batched_tokens);
}

bool Scheduler::before(const Sequence& a, const Sequence& b) const {
  return a.priority != b.priority ? a.priority < b.priority : a.arrival_order < b.arrival_order;
}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
  seq->arrival_order = n_added_++;
  requeue(std::move(seq));
}

void Scheduler::requeue(std::unique_ptr<Sequence> seq) {
  if (policy_ == SchedulingPolicy::scheduling_fcfs) {
    // New requests at the back; a preempted one (admitted before every waiting one) in front.
    if (seq->n_cached_prompt >= 0) waiting_.push_front(std::move(seq));
    else waiting_.push_back(std::move(seq));
    return;
  }
  auto at = std::upper_bound(waiting_.begin(), waiting_.end(), seq,
                             [&](const auto& a, const auto& b) { return before(*a, *b); });
  waiting_.insert(at, std::move(seq));
}

void Scheduler::insert_running(std::unique_ptr<Sequence> seq) {
  if (policy_ == SchedulingPolicy::scheduling_fcfs) {
    running_.push_back(std::move(seq));
    return;
  }
  auto at = std::upper_bound(running_.begin(), running_.end(), seq,
                             [&](const auto& a, const auto& b) { return before(*a, *b); });
  running_.insert(at, std::move(seq));
}

bool Scheduler::reserve(Sequence& seq, int n_tokens) {
  const size_t need = size_t((n_tokens + blocks_.block_size() - 1) / blocks_.block_size());
  while (seq.block_table.size() < need) {
    auto b = blocks_.allocate();
    if (!b) return false;
    seq.block_table.push_back(*b);
  }
  return true;
}

void Scheduler::release_blocks(Sequence& seq) {
  blocks_.release(seq.block_table);
  seq.block_table.clear();
  seq.block_prefixes.clear();
  seq.n_computed = 0;
}

void Scheduler::preempt(Sequence& seq) {
  release_blocks(seq);
  ++n_preemptions_;
}

int64_t Scheduler::match_prefix(Sequence& seq) {
  // At least the last token is computed: its logits give the next token.
  const int bs = blocks_.block_size();
  const int64_t max_blocks = (int64_t(seq.tokens.size()) - 1) / bs;
  seq.block_table = blocks_.match_prefix(seq.tokens, max_blocks, seq.cache_salt);
  for (int32_t block : seq.block_table) seq.block_prefixes.push_back(blocks_.prefix_ref(block));
  seq.n_computed = int(seq.block_table.size()) * bs;
  return blocks_.prefix_caching() ? max_blocks * bs : 0;
}

void Scheduler::admitted(Sequence& seq, int64_t n_queried) {
  seq.n_prompt_computed_ever = std::max(seq.n_prompt_computed_ever, std::min(seq.n_computed, seq.n_prompt));
  if (seq.n_cached_prompt >= 0) return;  // a re-admission after preemption
  seq.n_cached_prompt = std::min(seq.n_computed, seq.n_prompt);
  prefix_queried_tokens_ += n_queried;
  prefix_hit_tokens_ += seq.n_computed;
}

std::vector<ScheduledSequence> Scheduler::schedule() {
  std::vector<ScheduledSequence> out;
  int budget = max_num_batched_tokens_;
  bool preempted = false;
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence& seq = *running_[i];
    const int n_new = std::min(int(seq.tokens.size()) - seq.n_computed, budget);
    while (!reserve(seq, seq.n_computed + n_new)) {
      // Free the last sequence's blocks (possibly this one's) and queue it again: fcfs at the
      // front, so it is the next one admitted; priority at its place by priority.
      std::unique_ptr<Sequence> victim = std::move(running_.back());
      running_.pop_back();
      preempt(*victim);
      preempted = true;
      const bool self = victim.get() == &seq;
      requeue(std::move(victim));
      if (self) break;
    }
    if (i >= running_.size()) break;  // this sequence was the one preempted
    out.push_back({&seq, n_new, seq.n_computed + n_new == int(seq.tokens.size())});
    budget -= n_new;
  }
  // New work only when nothing had to make room this step.
  while (!preempted && budget > 0 && !waiting_.empty() && int(running_.size()) < max_num_seqs_) {
    Sequence& seq = *waiting_.front();
    const int64_t n_queried = match_prefix(seq);
    const int n_new = std::min(int(seq.tokens.size()) - seq.n_computed, budget);
    if (!reserve(seq, seq.n_computed + n_new)) {
      release_blocks(seq);  // keep nothing while waiting
      break;
    }
    admitted(seq, n_queried);
    insert_running(std::move(waiting_.front()));
    waiting_.pop_front();
    out.push_back({&seq, n_new, seq.n_computed + n_new == int(seq.tokens.size())});
    budget -= n_new;
  }
  return out;
}

void Scheduler::computed(const ScheduledSequence& s) {
  Sequence& seq = *s.seq;
  seq.n_computed += s.n_new;
  seq.n_prompt_computed_ever = std::max(seq.n_prompt_computed_ever, std::min(seq.n_computed, seq.n_prompt));
  const int bs = blocks_.block_size();
  for (size_t b = seq.block_prefixes.size(); b < size_t(seq.n_computed / bs); ++b) {
    auto tokens = std::span(seq.tokens).subspan(b * size_t(bs), size_t(bs));
    const KvPrefixRef parent = b == 0 ? kv_root_prefix(seq.cache_salt) : seq.block_prefixes[b - 1];
    seq.block_prefixes.push_back(blocks_.register_full_block(seq.block_table[b], parent, tokens, seq.cache_salt));
  }
}

std::vector<RequestId> Scheduler::ids() const {
  std::vector<RequestId> out;
  for (const auto& s : running_) out.push_back(s->id);
  for (const auto& s : waiting_) out.push_back(s->id);
  return out;
}

int64_t Scheduler::waiting_blocks() const {
  int64_t n = 0;
  for (const auto& s : waiting_) n += (int64_t(s->tokens.size()) + blocks_.block_size() - 1) / blocks_.block_size();
  return n;
}

std::unique_ptr<Sequence> Scheduler::remove(RequestId id) {
  auto take = [&](auto& queue) -> std::unique_ptr<Sequence> {
    auto it = std::find_if(queue.begin(), queue.end(), [&](const auto& s) { return s->id == id; });
    if (it == queue.end()) return nullptr;
    std::unique_ptr<Sequence> seq = std::move(*it);
    queue.erase(it);
    blocks_.release(seq->block_table);
    seq->block_table.clear();
    return seq;
  };
  if (auto s = take(running_)) return s;
  return take(waiting_);
}

}  // namespace dsi
