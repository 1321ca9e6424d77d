#pragma once
// Chooses each step's work: which sequences run, how many of their tokens, which KV blocks
// they write. Running sequences keep their place and get their decode token (or next prefill
// chunk) before any waiting request is admitted, and waiting requests are admitted in queue
// order (one that does not fit blocks those behind it). When blocks run out, the last running
// sequence is preempted (its blocks freed, recomputed later from its tokens) until the ones
// before it fit. The policy (vLLM's --scheduling-policy) says what "order" and "last" mean:
//   fcfs:     arrival order; the most recently admitted is preempted first and goes back to
//             the front of the queue.
//   priority: (priority, arrival) ascending, lower values first, ties by arrival; both queues
//             are kept in that order, so the lowest-priority (latest among equals) running
//             sequence is preempted first and rejoins the queue at its place.
// Owned and called by the engine's thread only.
#include <deque>
#include <memory>
#include <vector>

#include "engine/request.h"
#include "engine/sampler.h"
#include "kvcache/block_manager.h"

namespace dsi {

struct Sequence {
  Sequence(RequestId id_, EngineRequest&& r)
      : id(id_), tokens(std::move(r.prompt)), n_prompt(int(tokens.size())), sampling(r.sampling),
        sampler(r.sampling), on_output(std::move(r.on_output)), arrival(r.arrival), priority(r.priority),
        cache_salt(std::move(r.cache_salt)) {}

  RequestId id;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int n_prompt;
  int n_computed = 0;               // tokens whose keys are in the cache
  int n_prompt_computed_ever = 0;   // for the prompt-token counter (recomputes excluded)
  int n_cached_prompt = -1;         // prefix-cache hits at first admission (-1: not admitted yet)
  std::vector<int32_t> block_table;
  int dp_rank = 0;  // the data-parallel rank whose KV pool holds it (fixed for its life)
  // For each leading full block, the cached block that identifies the prefix up to its end
  // (its own, or an equal one registered first): the parent of the next block.
  std::vector<KvPrefixRef> block_prefixes;
  SamplingParams sampling;
  SamplerState sampler;
  OutputCallback on_output;
  std::chrono::steady_clock::time_point arrival;
  std::optional<std::chrono::steady_clock::time_point> first_scheduled;  // its first batch
  int64_t priority = 0;        // EngineRequest::priority
  std::string cache_salt;      // EngineRequest::cache_salt
  uint64_t arrival_order = 0;  // set by Scheduler::add: ties of priority go by it

  int n_generated() const { return int(tokens.size()) - n_prompt; }
  std::span<const int32_t> generated() const { return std::span(tokens).subspan(size_t(n_prompt)); }
};

struct ScheduledSequence {
  Sequence* seq;
  int n_new;     // tokens computed this step, from seq->n_computed on
  bool samples;  // its last token is the newest: a new token is sampled from its logits
};

class Scheduler {
 public:
  Scheduler(KvBlockManager& blocks, int max_num_seqs, int max_num_batched_tokens,
            SchedulingPolicy policy = SchedulingPolicy::scheduling_fcfs);

  // Joins the waiting queue: at the back (fcfs), or behind every request of the same or a
  // lower priority value (priority).
  void add(std::unique_ptr<Sequence> seq);
  std::vector<ScheduledSequence> schedule();
  // After the step's forward: counts the computed tokens and shares newly full blocks.
  void computed(const ScheduledSequence& s);
  // Removes a sequence (finished or aborted) and frees its blocks.
  std::unique_ptr<Sequence> remove(RequestId id);

  bool empty() const { return running_.empty() && waiting_.empty(); }
  std::vector<RequestId> ids() const;  // every running and waiting sequence
  int n_running() const { return int(running_.size()); }
  int n_waiting() const { return int(waiting_.size()); }
  // KV blocks the waiting sequences' tokens will take when admitted (without prefix hits).
  int64_t waiting_blocks() const;
  int64_t n_preemptions() const { return n_preemptions_; }
  // Prompt tokens looked up in the prefix cache and found there, counted once per request at
  // its first admission (failed attempts and re-admissions after preemption not counted).
  int64_t prefix_queried_tokens() const { return prefix_queried_tokens_; }
  int64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }

 private:
  bool reserve(Sequence& seq, int n_tokens);  // blocks for the first n_tokens tokens
  void release_blocks(Sequence& seq);         // back to nothing computed
  void preempt(Sequence& seq);
  int64_t match_prefix(Sequence& seq);  // returns the tokens looked up
  void admitted(Sequence& seq, int64_t n_queried);
  bool before(const Sequence& a, const Sequence& b) const;  // priority policy: a is served first
  void requeue(std::unique_ptr<Sequence> seq);              // a preempted sequence back to waiting
  void insert_running(std::unique_ptr<Sequence> seq);

  KvBlockManager& blocks_;
  int max_num_seqs_, max_num_batched_tokens_;
  SchedulingPolicy policy_;
  uint64_t n_added_ = 0;
  std::vector<std::unique_ptr<Sequence>> running_;  // admission order (fcfs), priority order (priority)
  std::deque<std::unique_ptr<Sequence>> waiting_;
  int64_t n_preemptions_ = 0;
  int64_t prefix_queried_tokens_ = 0, prefix_hit_tokens_ = 0;
};

}  // namespace dsi
