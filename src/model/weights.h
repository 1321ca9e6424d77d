#pragma once
// The parameters of a DeepSeek model as views. Loading gives host views: linear weights point
// into the checkpoint's memory maps (no copy) or into generated dummy weights; small vectors
// (norms, router bias) are widened to float32 once. upload_weights then moves every view into
// backend memory (model/weight_upload.h), the only form the model computes on.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "model/config.h"

namespace dsi {

struct MlaWeights {
  std::optional<Weight> q_proj;  // [n_heads * qk_head_dim, hidden] when q_lora_rank is null
  std::optional<Weight> q_a;     // [q_lora_rank, hidden]
  Tensor q_a_norm;               // f32 [1, q_lora_rank]
  std::optional<Weight> q_b;     // [n_heads * qk_head_dim, q_lora_rank]
  Weight kv_a;                   // [kv_lora_rank + qk_rope_head_dim, hidden]
  Tensor kv_a_norm;              // f32 [1, kv_lora_rank]
  Weight kv_b;                   // [n_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  Weight o;                      // [hidden, n_heads * v_head_dim]
  // q_proj (or q_a) then kv_a, stacked by rows where the backend stacks them
  // (Backend::upload_stacked): one product for both; the parts are then views of its rows.
  std::optional<Weight> q_kv_a;
};

struct MoeWeights {
  Weight router;                    // [n_routed_experts, hidden]
  Tensor score_bias;                // f32 [1, n_routed_experts] (noaux_tc), else empty
  std::vector<MlpWeights> experts;  // routed experts by index, as loaded (host); emptied by upload
  ExpertMlpWeights routed;          // the same in backend memory, one ExpertWeight per projection
  std::optional<MlpWeights> shared;
};

struct LayerWeights {
  Tensor input_norm;  // f32 [1, hidden]
  Tensor post_norm;   // f32 [1, hidden]
  MlaWeights attn;
  std::optional<MlpWeights> mlp;  // dense layers
  std::optional<MoeWeights> moe;  // MoE layers
};

// Owns whatever backs the host views (memory maps, float32 copies, dummy buffers).
class WeightStorage {
 public:
  virtual ~WeightStorage() = default;
};

struct ModelWeights {
  Weight embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // f32 [1, hidden]
  Weight lm_head;     // [vocab, hidden] (the embedding when tie_word_embeddings)
  std::shared_ptr<WeightStorage> storage;  // host views' memory; null once uploaded
  uint64_t n_bytes = 0;  // bytes of all parameters as stored
  bool uploaded = false;  // views are in backend memory
};

// Loads and validates the checkpoint in `dir` against `config`: every expected tensor present
// with the expected dtype and shape, FP8 block scales of the right shape. Errors name the
// file and the tensor.
ModelWeights load_checkpoint_weights(const ModelConfig& config, const std::string& dir);

// Random weights from the config alone (--load-format dummy), deterministic in `seed`;
// FP8 when the config is quantised, else BF16. Scaled so activations stay O(1).
ModelWeights make_dummy_weights(const ModelConfig& config, uint64_t seed);

}  // namespace dsi
