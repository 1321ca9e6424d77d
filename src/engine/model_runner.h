#pragma once
// A model ready to run on one backend: the backend (from the factory: --device, --dtype), the
// weights uploaded into it, the paged KV cache (backend memory) with its block bookkeeping, and
// the persistent workspace every step runs in. The engine's scheduler and the one-shot
// commands (logits, generate) drive it. Not thread-safe: one thread runs it.
#include <memory>
#include <span>
#include <string>

#include "backend/backend_factory.h"
#include "kvcache/block_manager.h"
#include "model/deepseek_model.h"
#include "model/tensor_dump.h"
#include "model/workspace.h"
#include "parallel/parallel_context.h"

namespace dsi {

inline constexpr int64_t kDefaultCpuKvBytes = int64_t(1) << 30;
// Left beside the KV cache on a GPU for what the CUDA context, the driver and cuBLASLt take
// outside our buffers (not visible to the backend's own accounting).
inline constexpr int64_t kGpuKvReserveBytes = int64_t(512) << 20;

// What the runner holds in its backend's memory, for /metrics, logs and the planner's check.
struct RunnerMemory {
  std::string device;             // the backend's name: "cpu", "cuda:0"
  int64_t weight_bytes = 0;       // the weights as the backend holds them (a GPU: after conversion)
  int64_t kv_cache_bytes = 0;     // the paged KV pool
  int64_t workspace_bytes = 0;    // per-step activations and metadata
  int64_t device_free_bytes = 0;  // free memory of the device once everything is allocated
  int64_t device_total_bytes = 0;
};

struct RunnerOptions {
  BackendOptions backend;
  // Bytes of the KV cache; 0 (auto): kDefaultCpuKvBytes on the CPU, and on a GPU what
  // gpu_memory_utilization x total leaves once this process's weights, workspace and backend
  // scratch are allocated (everything a step uses is allocated before the cache, so no step
  // needs more later), minus kGpuKvReserveBytes, and at most what is free.
  int64_t kv_cache_bytes = 0;
  double gpu_memory_utilization = 0.9;
  int block_size = 64;
  bool prefix_caching = true;
  int64_t max_kv_blocks = 0;  // caps the block count (0: as many as the memory holds)
  // The workspace's capacity: a step holds at most this many tokens, sequences, logit rows
  // (0: min(max_num_seqs, max_num_batched_tokens)) and context tokens per sequence (0: the
  // model's max_position_embeddings, limited by the cache).
  int max_num_batched_tokens = 2048;
  int max_num_seqs = 256;
  int64_t max_logit_rows = 0;
  int64_t max_model_len = 0;
  DumpOptions dump;  // debug dumps of named intermediates (off when empty)
  // This rank's place in a parallel run (a world of one by default); the runner keeps its
  // slices of the weights (model/sharding.h) and every rank must run every forward.
  ParallelContext parallel;
  // What carries the model's collectives (nccl or host: the startup choice,
  // check_gpus_and_collectives); the runner makes them over its backend.
  DeviceCollectivesMode device_collectives = DeviceCollectivesMode::device_collectives_host;
};

class ModelRunner {
 public:
  // Creates the backend, uploads `weights` (host views of the full model; this rank's slices
  // under options.parallel) into it, allocates the KV cache and the workspace. Logs the time
  // from here to ready. config() is then this rank's config (its share of heads and widths).
  ModelRunner(ModelConfig config, ModelWeights weights, const RunnerOptions& options);

  const ModelConfig& config() const { return model_->config(); }
  DeepSeekModel& model() { return *model_; }
  Backend& backend() { return *backend_; }
  // The KV block bookkeeping of DP rank `dp_rank`'s cache (rank 0 schedules every DP rank's
  // pool; all pools have the same number of blocks). Without DP attention, one.
  KvBlockManager& blocks(int dp_rank = 0) { return *blocks_.at(size_t(dp_rank)); }
  int n_block_managers() const { return int(blocks_.size()); }
  const KvCacheView& cache() const { return cache_; }
  int block_size() const { return cache_.block_size; }
  const StepLimits& step_limits() const { return workspace_->step.limits; }
  // Bytes of cache one token takes in every layer (MLA: the latent plus the rotary key).
  int64_t kv_bytes_per_token() const;
  double ready_seconds() const { return ready_seconds_; }  // upload + allocation at startup
  const RunnerMemory& memory() const { return memory_; }

  // Runs one batch: validates and uploads its metadata once, then the model; logits of
  // batch.logit_rows land in `logits` ([rows, vocab]). Throws Error for a batch that does not
  // fit the workspace or the cache.
  // On rank 0 of a parallel run it first broadcasts the batch (engine/step_broadcast.h), so
  // the engine drives every rank by calling it; the other ranks run it from run_worker. Under
  // data-parallel attention the batch runs on DP rank 0 and the other DP ranks idle.
  void forward(const ForwardBatch& batch, std::span<float> logits);
  // Rank 0: one step of every DP rank (batches[d] for DP rank d, parallel().dp_size of them;
  // any may be empty, not all). `logits` gets the logits rows of batch 0, then batch 1, ...
  void forward_plan(std::span<const ForwardBatch> batches, std::span<float> logits);
  // Whether steps may sample on the device (forward_on_device + sample_on_device): the backend
  // has a device sampler and the job is one rank (with more, the logits rows meet on rank 0
  // through host memory, and the engine samples them there).
  bool samples_on_device() const;
  // forward(), leaving the logits rows on the device for sample_on_device.
  void forward_on_device(const ForwardBatch& batch);
  // Tokens for the last forward_on_device's logits rows (Backend::sample; rows in logit_rows
  // order), the records prepared by engine/sampling_rows.h.
  void sample_on_device(std::span<const sampling::SamplingRow> rows,
                        std::span<const sampling::SamplingPenalty> penalties,
                        std::span<sampling::SamplingResult> results);
  // A host buffer for `rows` logits rows, the kind the backend copies into fastest (pinned on a
  // GPU: the step's logits arrive at PCIe speed rather than through the driver's pageable
  // staging). Valid until the next call; grows, never shrinks.
  std::span<float> host_logits(int64_t rows);
  // Other ranks: runs this rank's part of a step rank 0 broadcast (run_worker).
  void run_step(std::span<const ForwardBatch> batches);
  const ParallelContext& parallel() const { return parallel_; }
  // Rank 0 of a parallel run: tells the workers to return from run_worker (once, at the end).
  void stop_workers();

  // Tokens each routed expert got in the last step, [n_layers * n_routed_experts] (zero rows
  // for dense layers): copied from backend memory on request, for load metrics. Under DP
  // attention, this rank's tokens only.
  std::vector<int32_t> expert_counts();

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<DeepSeekModel> model_;
  Buffer cache_memory_;
  KvCacheView cache_;
  // Runs this rank's batch of the plan; under DP, gathers every rank's logits rows on rank 0
  // (into root_logits there; empty elsewhere).
  void execute(std::span<const ForwardBatch> batches, std::span<float> root_logits);
  // logits: the host rows to fill, unless on_device (they stay in the workspace).
  void run_batch(const ForwardBatch& batch, std::span<float> logits, bool on_device = false);

  std::vector<std::unique_ptr<KvBlockManager>> blocks_;
  std::vector<float> own_logits_;
  Buffer host_logits_;   // host_logits()
  ForwardBatch padded_;  // the last decode step padded to its graph's size (step_padding.h)
  bool idle_ = false;  // this rank had no tokens in the last step (data-parallel attention)
  int64_t last_logit_rows_ = 0;  // of the last forward_on_device, for sample_on_device
  std::unique_ptr<Workspace> workspace_;
  std::unique_ptr<TensorDump> dump_;
  double ready_seconds_ = 0;
  RunnerMemory memory_;
  ParallelContext parallel_;
  bool workers_stopped_ = false;
  // parallel_'s device collectives over the backend, for `mode` (none in a world of one).
  void make_collectives(DeviceCollectivesMode mode);
};

// Bytes of a size such as "1GiB", "512MiB", "2G", "1000000" (plain bytes).
int64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace dsi
