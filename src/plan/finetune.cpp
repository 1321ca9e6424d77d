#include "plan/finetune.h"

#include <algorithm>

namespace dsi::plan {

namespace {

// Elements saved per token by the attention block (bf16): norm input and output, the query
// latent and its normed copy, the kv latent before and after its norm, expanded q, k, v and the
// attention output. FlashAttention keeps no seq x seq matrix.
double attention_elems(const ModelConfig& c) {
  const double nh = c.n_heads;
  return 2.0 * double(c.hidden_size) + 2.0 * double(c.q_lora_rank.value_or(0)) + double(c.kv_cache_dim()) +
         double(c.kv_lora_rank) + nh * (2.0 * double(c.qk_head_dim()) + 2.0 * double(c.v_head_dim));
}

// Elements saved per token by the FFN: norm input and output, then gate, up and gate*up of the
// dense MLP; for MoE the router scores (float32: 2 bf16 units), each chosen expert's copy of the
// token with its gate, up and product, and the shared experts'.
double ffn_elems(const ModelConfig& c, bool moe) {
  const double h = double(c.hidden_size);
  if (!moe) return 2 * h + 3.0 * double(c.intermediate_size);
  const double k = c.num_experts_per_tok, im = double(c.moe_intermediate_size);
  return 2 * h + 2.0 * c.n_routed_experts + k * h + 3 * k * im + 3.0 * c.n_shared_experts * im;
}

}  // namespace

ActivationBytes training_activation_bytes(const ModelConfig& c, const TrainingRequest& r) {
  const double tokens = double(r.seq_len) * double(r.micro_batch);
  double sum = 0, largest = 0;
  for (int i = 0; i < c.n_layers; ++i) {
    const double layer = attention_elems(c) + ffn_elems(c, c.is_moe_layer(i));
    sum += layer;
    largest = std::max(largest, layer);
  }
  const double logits = 4.0 * tokens * double(c.vocab_size);
  ActivationBytes a;
  a.full = 2.0 * tokens * sum + logits;
  a.checkpointed = 2.0 * tokens * double(c.hidden_size) * c.n_layers + 2.0 * tokens * largest + logits;
  return a;
}

int64_t lora_params(const WeightInventory& inv, int64_t rank) {
  int64_t n = 0;
  for (const LayerInventory& l : inv.layers)
    for (const WeightTensor& t : l.tensors)
      if (t.quantizable) n += rank * (t.rows + t.cols) * t.n_copies;  // the Linear projections
  return n;
}

namespace {

// Mixed-precision Adam keeps per parameter: bf16 weight (2), bf16 gradient (2), float32 master
// weight, first and second moment (12) = 16 bytes; ZeRO stage 1 partitions the 12, stage 2 also
// the gradients, stage 3 also the weights, over the N data-parallel GPUs.
FinetuneRow full_row(int stage, bool offload_opt, bool offload_params, double psi, double n, double g,
                     double largest_layer) {
  FinetuneRow r;
  r.method = FinetuneMethod::full;
  r.zero_stage = stage;
  r.offload_optimizer = offload_opt;
  r.offload_params = offload_params;
  r.name = fmt::format("full, ZeRO-{}{}", stage,
                       offload_params ? " + optimizer & param offload" : offload_opt ? " + optimizer offload" : "");
  const double weights = stage >= 3 ? 2 * psi / n : 2 * psi;
  const double grads = stage >= 2 ? 2 * psi / n : 2 * psi;
  const double optim = stage >= 1 ? 12 * psi / n : 12 * psi;
  r.model_state_bytes = weights + grads + (offload_opt ? 0 : optim);
  // The offloaded optimizer (DeepSpeed CPU Adam) keeps its 12 bytes plus a float32 copy of the
  // gradient (4) per parameter of the GPU's partition in host memory.
  if (offload_opt) r.cpu_bytes_per_node = 16 * psi / n * g;
  if (offload_params) {
    // Parameters live on the host; the GPU gathers one layer and prefetches the next.
    r.model_state_bytes = grads + 2 * 2 * largest_layer;
    r.cpu_bytes_per_node += 2 * psi / n * g;
  }
  return r;
}

// LoRA: the frozen base weights (replicated, or partitioned under ZeRO-3) and 16 bytes per
// trainable LoRA parameter (the same mixed-precision Adam).
FinetuneRow lora_row(int stage, int64_t rank, double base_bytes, double psi_lora, double n) {
  FinetuneRow r;
  r.method = FinetuneMethod::lora;
  r.zero_stage = stage;
  r.name = fmt::format("LoRA r={}, ZeRO-{}", rank, stage);
  r.model_state_bytes = stage >= 3 ? (base_bytes + 16 * psi_lora) / n : base_bytes + 16 * psi_lora;
  return r;
}

}  // namespace

FinetuneEstimate estimate_finetune(const ModelConfig& c, const WeightInventory& inv, const ParamCounts& params,
                                   int n_gpus, int gpus_per_node, double gpu_memory_bytes,
                                   WeightDtype lora_base_dtype, const TrainingRequest& req, const Calibration& cal) {
  FinetuneEstimate e;
  e.params = params.total;
  e.lora_params = lora_params(inv, req.lora_rank);
  e.lora_rank = req.lora_rank;
  e.seq_len = req.seq_len;
  e.micro_batch = req.micro_batch;
  for (const LayerInventory& l : inv.layers) {
    int64_t n = 0;
    for (const WeightTensor& t : l.tensors) n += t.n_params();
    e.largest_layer_params = std::max(e.largest_layer_params, n);
  }
  e.activations = training_activation_bytes(c, req);
  Calibration no_graphs = cal;
  no_graphs.cuda_graphs_mib = 0;
  e.overhead_bytes = double(no_graphs.fixed_overhead_bytes(n_gpus - 1));

  const double psi = double(e.params), n = n_gpus, g = gpus_per_node, big = double(e.largest_layer_params);
  for (int stage = 0; stage <= 3; ++stage) e.rows.push_back(full_row(stage, false, false, psi, n, g, big));
  for (int stage = 1; stage <= 3; ++stage) e.rows.push_back(full_row(stage, true, false, psi, n, g, big));
  e.rows.push_back(full_row(3, true, true, psi, n, g, big));
  const double base = double(weight_bytes(inv, lora_base_dtype, QuantBlock::of(c)).main);
  e.rows.push_back(lora_row(0, req.lora_rank, base, double(e.lora_params), n));
  e.rows.push_back(lora_row(3, req.lora_rank, base, double(e.lora_params), n));

  const double usable = gpu_memory_bytes * cal.memory_utilization;
  const double cpu = cal.cpu_memory_per_node_gib * double(1ull << 30);
  for (FinetuneRow& r : e.rows) {
    r.total_bytes = r.model_state_bytes + e.activations.checkpointed + e.overhead_bytes;
    r.fits = r.total_bytes <= usable && r.cpu_bytes_per_node <= cpu;
  }
  return e;
}

}  // namespace dsi::plan
