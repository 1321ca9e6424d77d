#pragma once
// `dsinfer plan` without the CLI: from a model config and a cluster, everything the report
// shows. Pure computation; no I/O.
#include <optional>
#include <string>
#include <vector>

#include "plan/calibration.h"
#include "plan/cluster.h"
#include "plan/comm_model.h"
#include "plan/finetune.h"
#include "plan/layout.h"
#include "plan/model_size.h"
#include "plan/model_source.h"

namespace dsi::plan {

struct PlanRequest {
  std::optional<WeightDtype> weights;  // unset: the checkpoint's own (fp8 if quantization_config, else bf16)
  ServingRequest serving;              // serving.weights is filled in by make_plan
  TrainingRequest training;
};

struct Plan {
  ModelSource model;
  Cluster cluster;
  GpuSpec gpu;                   // what every GPU is planned as (Cluster::planned_gpu)
  Calibration calibration;
  WeightDtype requested_weights = WeightDtype::bf16;  // --weights, or the checkpoint's own
  WeightDtype gpu_weights = WeightDtype::bf16;        // as held on the GPU (FP8 dequantised where needed)
  ServingRequest serving;
  ParamCounts params;
  std::vector<std::pair<WeightDtype, WeightBytes>> weight_bytes;  // every dtype, for the table
  int64_t kv_bytes_per_token = 0;  // whole model, --kv-dtype
  std::vector<LayoutEstimate> layouts;
  // docs/design/parallel.md's model over all the GPUs: TP all-reduce against DP attention +
  // EP all-to-all, all links together. Set for more than one GPU.
  std::optional<CommPerToken> communication;
  std::optional<size_t> recommended;  // index into layouts
  std::string reason;                 // one sentence: why that layout, or why nothing fits
  std::vector<std::string> warnings;
  FinetuneEstimate finetune;

  const WeightBytes& bytes_of(WeightDtype d) const;
};

Plan make_plan(ModelSource model, Cluster cluster, const PlanRequest& req, const Calibration& cal);

}  // namespace dsi::plan
