#pragma once
// The serving engine: a queue of requests, a scheduler that forms each step's batch
// (continuous batching, chunked prefill, prefix reuse, preemption by recompute), the model
// runner, and the sampler. One thread runs the step loop; any thread may submit, finish or
// abort requests and read stats. See docs/design/engine.md for the request lifecycle.
#include <memory>

#include "engine/dp_scheduler.h"
#include "engine/expert_load.h"
#include "engine/model_runner.h"
#include "engine/request.h"

namespace dsi {

struct EngineOptions {
  int max_num_seqs = 256;              // running sequences at most
  int max_num_batched_tokens = 2048;   // tokens per forward step (prefill chunks + decodes)
  int64_t max_model_len = 0;           // prompt + output tokens; 0: min(max_position_embeddings, KV cache)
  // Requests queued beyond a full batch (max_num_seqs running); more are refused with a
  // SubmitError (submit_overloaded: the server answers 503).
  int max_waiting_requests = 4096;
  // --scheduling-policy: fcfs, or priority (EngineRequest::priority, lower first).
  SchedulingPolicy scheduling_policy = SchedulingPolicy::scheduling_fcfs;
  // Steps the expert-load window of /metrics spans (its counts are read back after each step
  // of a MoE model); 0: no readback, no expert-load series.
  int expert_load_window_steps = 64;
  // Sample on the backend's device sampler where it has one (one rank; engine/device_sampling.h),
  // so that the logits stay on the GPU; false (--sampler host): always on the host CPU.
  bool device_sampling = true;
};

// Why submit refused requests that were valid in themselves.
enum class SubmitRefusal {
  submit_overloaded,     // the queue has no room now: retry later (HTTP 503)
  submit_shutting_down,  // the engine is stopping (HTTP 503)
  submit_too_large,      // more requests in one group than the queue ever holds (HTTP 400)
};
class SubmitError : public Error {
 public:
  SubmitError(SubmitRefusal refusal, const std::string& message) : Error(message), refusal_(refusal) {}
  SubmitRefusal refusal() const { return refusal_; }

 private:
  SubmitRefusal refusal_;
};

// A snapshot for /metrics and logs. The counts are the engine's at its latest step, except
// n_waiting, which also counts what was submitted since (nothing queued is ever invisible).
struct EngineStats {
  int n_running = 0;
  int n_waiting = 0;  // queued, not running: submitted, waiting for admission, or preempted
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;    // held by sequences
  int64_t kv_blocks_cached = 0;  // free but holding reusable prefixes
  int64_t prefix_queried_tokens = 0;  // at each request's first admission
  int64_t prefix_hit_tokens = 0;
  int64_t prompt_tokens_total = 0;      // prompt tokens computed (cache hits excluded)
  int64_t generation_tokens_total = 0;
  int64_t preemptions_total = 0;
  int64_t steps_total = 0;
  double scheduler_seconds_total = 0;  // scheduling and bookkeeping, forward and sampling excluded
  double forward_seconds_total = 0;
  double sampling_seconds_total = 0;
  double communication_seconds_total = 0;  // in collectives between ranks (0 in a world of one)
  RunnerMemory memory;     // fixed at startup
  ExpertLoad expert_load;  // the latest window (no layers: a dense model, or readback off)
  // Data-parallel attention: each DP rank's placements, sequences and KV in use (one entry
  // without DP). kv_blocks_total and kv_blocks_used above sum the ranks' pools.
  std::vector<DpRankStats> data_parallel;
};

class Engine {
 public:
  Engine(ModelRunner& runner, const EngineOptions& options);  // the runner must outlive the engine
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineOptions& options() const { return options_; }
  int64_t max_model_len() const { return max_model_len_; }
  const ModelConfig& config() const { return runner_.config(); }

  // Queues the requests of one client request (its choices) together and returns their ids,
  // in order: either all are queued or none is, and nothing runs before all are. Throws
  // Error (naming the problem and the request's index) for an empty or too long prompt, ids
  // outside the vocabulary, or invalid sampling parameters, and SubmitError when the queue
  // has no room for all of them or the engine is shutting down. Thread-safe.
  std::vector<RequestId> submit(std::vector<EngineRequest> requests);
  RequestId submit(EngineRequest request);  // a group of one
  // Ends a request: its last event carries `reason` and its KV blocks are freed at the next
  // step. Unknown or finished ids are ignored. Thread-safe, never blocks on a step.
  void finish(RequestId id, FinishReason reason);
  void abort(RequestId id) { finish(id, FinishReason::finish_abort); }

  // Runs steps until stop(); sleeps while there is no work. Call from one thread.
  void run();
  // Makes run() return after the current step. With drain, new submits are refused at once and
  // run() first completes every queued and running request. Thread-safe.
  void stop(bool drain);
  // One scheduling step; returns false when there was nothing to do. For callers that drive
  // the engine themselves (the generate command, tests); not together with run().
  bool step();
  bool has_work();  // thread-safe

  EngineStats stats() const;  // thread-safe

 private:
  struct Impl;
  ModelRunner& runner_;
  EngineOptions options_;
  int64_t max_model_len_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsi
