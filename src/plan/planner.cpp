#include "plan/planner.h"

#include <algorithm>
#include <cmath>

#include "plan/advice.h"

namespace dsi::plan {

namespace {

WeightDtype checkpoint_dtype(const ModelConfig& c) { return c.quantization ? WeightDtype::fp8 : WeightDtype::bf16; }

}  // namespace

const WeightBytes& Plan::bytes_of(WeightDtype d) const {
  for (const auto& [dtype, bytes] : weight_bytes)
    if (dtype == d) return bytes;
  fail("internal: no weight bytes for {}", weight_dtype_name(d));
}

Plan make_plan(ModelSource model, Cluster cluster, const PlanRequest& req, const Calibration& cal) {
  Plan p;
  p.model = std::move(model);
  p.cluster = std::move(cluster);
  p.gpu = p.cluster.planned_gpu();
  p.calibration = cal;
  const ModelConfig& c = p.model.config;
  p.requested_weights = req.weights.value_or(checkpoint_dtype(c));
  // GPUs without FP8 tensor cores (Ampere, Volta) cannot run FP8 GEMMs: the weights are
  // dequantised to bf16 at load, doubling their bytes.
  p.gpu_weights = p.requested_weights == WeightDtype::fp8 && !p.gpu.has_fp8() && !p.gpu.is_custom()
                      ? WeightDtype::bf16
                      : p.requested_weights;
  p.serving = req.serving;
  p.serving.weights = p.gpu_weights;

  const WeightInventory inv = WeightInventory::from_config(c);
  p.params = count_params(c, inv);
  for (WeightDtype d : {WeightDtype::bf16, WeightDtype::fp8, WeightDtype::int8, WeightDtype::int4})
    p.weight_bytes.emplace_back(d, weight_bytes(inv, d, QuantBlock::of(c)));
  p.kv_bytes_per_token = kv_bytes_per_token(c, p.serving.kv);

  for (const Layout& l : candidate_layouts(c, p.cluster.n_gpus(), p.cluster.gpus_per_node()))
    p.layouts.push_back(estimate_layout(c, inv, l, p.cluster, p.serving, cal));
  if (p.cluster.n_gpus() > 1) p.communication = communication_per_token(c, p.cluster.n_gpus());
  recommend(p);
  add_warnings(p);
  // LoRA trainers dequantise an FP8 base to bf16; int8 / int4 bases stay quantised (QLoRA).
  const WeightDtype lora_base = p.requested_weights == WeightDtype::fp8 ? WeightDtype::bf16 : p.requested_weights;
  p.finetune = estimate_finetune(c, inv, p.params, p.cluster.n_gpus(), p.cluster.gpus_per_node(),
                                 double(p.gpu.memory_bytes()), lora_base, req.training, cal);
  return p;
}

}  // namespace dsi::plan
