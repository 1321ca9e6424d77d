#pragma once
// The DeepSeek-V2/V3 forward pass, written once as math over the backend's ops (MATH.md).
// It owns no kernels, no cache policy and no scheduling: the caller hands it a batch of new
// tokens with their KV slots, and it returns the logits of the rows the batch asks for.
#include <span>

#include "backend/backend.h"
#include "model/config.h"
#include "model/rope.h"
#include "model/weights.h"

namespace dsi {

class DeepSeekModel {
 public:
  // The backend must outlive the model.
  DeepSeekModel(ModelConfig config, ModelWeights weights, Backend& backend);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  Backend& backend() const { return backend_; }

  // Runs every token of `batch` through the model, writing their latent KV rows into `cache`,
  // and stores the logits of batch.logit_rows into `logits` ([n_logit_rows, vocab], host).
  // Not thread-safe: one forward at a time per model.
  void forward(const ForwardBatch& batch, const KvCacheView& cache, std::span<float> logits);

 private:
  struct Scratch;
  void attention(int layer, const ForwardBatch& batch, const KvCacheView& cache, Scratch& s);
  void feed_forward(int layer, Scratch& s);

  ModelConfig config_;
  ModelWeights weights_;
  Backend& backend_;
  RopeTable rope_;
  MlaShape mla_;
  RoutingParams routing_;
};

}  // namespace dsi
