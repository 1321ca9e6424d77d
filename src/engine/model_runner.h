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
};

class ModelRunner {
 public:
  // Creates the backend, uploads `weights` (host views) into it, allocates the KV cache and
  // the workspace. Logs the time from here to ready.
  ModelRunner(ModelConfig config, ModelWeights weights, const RunnerOptions& options);

  const ModelConfig& config() const { return model_->config(); }
  DeepSeekModel& model() { return *model_; }
  Backend& backend() { return *backend_; }
  KvBlockManager& blocks() { return *blocks_; }
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
  void forward(const ForwardBatch& batch, std::span<float> logits);

  // Tokens each routed expert got in the last step, [n_layers * n_routed_experts] (zero rows
  // for dense layers): copied from backend memory on request, for load metrics.
  std::vector<int32_t> expert_counts();

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<DeepSeekModel> model_;
  Buffer cache_memory_;
  KvCacheView cache_;
  std::unique_ptr<KvBlockManager> blocks_;
  std::unique_ptr<Workspace> workspace_;
  std::unique_ptr<TensorDump> dump_;
  double ready_seconds_ = 0;
  RunnerMemory memory_;
};

// Bytes of a size such as "1GiB", "512MiB", "2G", "1000000" (plain bytes).
int64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace dsi
