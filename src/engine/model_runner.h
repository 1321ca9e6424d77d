#pragma once
// A model ready to run on one backend, with its paged KV cache: the cache memory (from the
// backend) and its block bookkeeping. The engine's scheduler and the one-shot commands
// (logits, generate) drive it. Not thread-safe: one thread runs it.
#include <memory>
#include <span>

#include "backend/backend.h"
#include "kvcache/block_manager.h"
#include "model/deepseek_model.h"

namespace dsi {

struct RunnerOptions {
  int64_t kv_cache_bytes = int64_t(1) << 30;
  int block_size = 64;
  bool prefix_caching = true;
  int64_t max_kv_blocks = 0;  // caps the block count (0: as many as the memory holds)
};

class ModelRunner {
 public:
  ModelRunner(ModelConfig config, ModelWeights weights, std::unique_ptr<Backend> backend, const RunnerOptions& options);

  const ModelConfig& config() const { return model_->config(); }
  DeepSeekModel& model() { return *model_; }
  KvBlockManager& blocks() { return blocks_; }
  const KvCacheView& cache() const { return cache_; }
  int block_size() const { return cache_.block_size; }
  // Bytes of cache one token takes in every layer (MLA: the latent plus the rotary key).
  int64_t kv_bytes_per_token() const;

  // Runs one batch; logits of batch.logit_rows land in `logits` ([rows, vocab]).
  void forward(const ForwardBatch& batch, std::span<float> logits) { model_->forward(batch, cache_, logits); }

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<DeepSeekModel> model_;
  Buffer cache_memory_;
  KvCacheView cache_;
  KvBlockManager blocks_;
};

// Bytes of a size such as "1GiB", "512MiB", "2G", "1000000" (plain bytes).
int64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace dsi
