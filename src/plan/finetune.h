#pragma once
// Memory per GPU for fine-tuning a DeepSeek model on the same GPUs: full fine-tuning with
// mixed-precision Adam under ZeRO stages 0-3, with and without CPU offload, and LoRA. Pure data
// parallelism (every GPU runs whole layers on its own micro-batch). The closed forms are in
// docs/plan.md "Fine-tuning"; tests check these functions against them.
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "plan/calibration.h"
#include "plan/inventory.h"
#include "plan/model_size.h"

namespace dsi::plan {

struct TrainingRequest {
  int64_t seq_len = 4096;  // tokens per training sequence
  int64_t micro_batch = 1; // sequences per GPU per step
  int64_t lora_rank = 16;
};

// Activation bytes of one micro-batch on one GPU: every layer's saved tensors (no
// checkpointing), or one saved input per layer plus one layer recomputed (checkpointing).
// Both include float32 logits of the micro-batch.
struct ActivationBytes {
  double full = 0;
  double checkpointed = 0;
};
ActivationBytes training_activation_bytes(const ModelConfig& c, const TrainingRequest& r);

// LoRA parameters of rank r on every attention projection (q_proj or q_a_proj + q_b_proj,
// kv_a_proj_with_mqa, kv_b_proj, o_proj) and every MLP projection (gate, up, down of the dense
// MLPs, the shared experts and each routed expert): sum of r * (in + out).
int64_t lora_params(const WeightInventory& inv, int64_t rank);

enum class FinetuneMethod { full, lora };

struct FinetuneRow {
  std::string name;            // "full, ZeRO-2 + optimizer offload"
  FinetuneMethod method = FinetuneMethod::full;
  int zero_stage = 0;
  bool offload_optimizer = false;
  bool offload_params = false;
  double model_state_bytes = 0;  // per GPU: weights, gradients, optimizer states
  double cpu_bytes_per_node = 0; // host memory the offload needs on each node
  double total_bytes = 0;        // per GPU with checkpointed activations and fixed overheads
  bool fits = false;             // GPU and host memory both suffice
};

struct FinetuneEstimate {
  int64_t params = 0;        // Psi: main model (MTP modules are not trained here)
  int64_t lora_params = 0;
  int64_t lora_rank = 0;
  int64_t seq_len = 0;
  int64_t micro_batch = 0;
  int64_t largest_layer_params = 0;
  ActivationBytes activations;
  double overhead_bytes = 0;  // CUDA context + NCCL + workspace (no CUDA graphs in training)
  std::vector<FinetuneRow> rows;
};

FinetuneEstimate estimate_finetune(const ModelConfig& c, const WeightInventory& inv, const ParamCounts& params,
                                   int n_gpus, int gpus_per_node, double gpu_memory_bytes,
                                   WeightDtype lora_base_dtype, const TrainingRequest& r, const Calibration& cal);

}  // namespace dsi::plan
