#pragma once
// Parallel layouts of a DeepSeek model over a cluster, and what each costs per GPU: weight
// shards, activation memory, KV-cache capacity, bytes communicated per generated token and a
// decode-speed estimate (docs/plan.md "Layouts" states the formulas).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "plan/calibration.h"
#include "plan/cluster.h"
#include "plan/inventory.h"
#include "plan/model_size.h"

namespace dsi::plan {

struct Layout {
  int pp = 1;  // pipeline stages; each holds a contiguous run of layers
  int tp = 1;  // tensor parallelism of attention, dense MLPs, shared experts, embedding and head
  int dp = 1;  // data-parallel attention replicas in a stage, each with its own sequences
  int ep = 1;  // routed experts spread whole over ep GPUs; 1: every expert split by TP instead

  int n_gpus() const { return pp * tp * dp; }
  int stage_gpus() const { return tp * dp; }
  int expert_tp() const { return stage_gpus() / ep; }  // TP inside one routed expert
  std::string name() const;                           // "TP8", "EP8, attention DP8", "PP2 x TP8"
};

// Every candidate layout for n GPUs (gpus_per_node each node): pure TP, PP x TP, and for MoE
// models EP with attention TP, DP or TP x DP, within the stage of a pipeline over nodes.
std::vector<Layout> candidate_layouts(const ModelConfig& c, int n_gpus, int gpus_per_node);

// Why a layout cannot run this model (heads not divisible by TP, more stages than layers,
// more EP ranks than experts), or nullopt.
std::optional<std::string> layout_problem(const ModelConfig& c, const Layout& l);

struct ServingRequest {
  WeightDtype weights = WeightDtype::bf16;  // as stored on the GPU (after any dequantisation)
  KvDtype kv = KvDtype::bf16;
  int64_t context = 32768;                  // tokens per sequence
  int64_t concurrency = 64;                 // sequences the user wants to serve at once
  int64_t max_batched_tokens = 8192;        // tokens in one engine step (prefill chunk)
  bool with_mtp = false;                    // load the MTP modules (speculative decoding)
};

struct LayoutEstimate {
  Layout layout;
  std::optional<std::string> problem;  // set: the layout cannot run; the figures below are 0
  int64_t weight_bytes_per_gpu = 0;    // worst pipeline stage
  int64_t activation_bytes = 0;        // after the calibration's activation_factor
  int64_t overhead_bytes = 0;          // CUDA context, NCCL, CUDA graphs, workspaces
  int64_t bytes_per_gpu = 0;           // weights + activations + overheads (KV excluded)
  int64_t usable_bytes = 0;            // memory x memory_utilization
  int64_t kv_bytes_free = 0;           // usable - bytes_per_gpu (negative: does not fit)
  int64_t kv_bytes_per_token_per_gpu = 0;
  bool fits = false;                   // room for the KV cache of at least one --context sequence
  int64_t max_concurrent_seqs = 0;     // sequences of --context tokens the layout holds in all
  double comm_bytes_per_token = 0;     // bytes one GPU sends per generated token
  bool comm_crosses_nodes = false;     // a TP, EP or PP group spans nodes
  // Decode estimates (0 when the GPU's bandwidth is unknown).
  double decode_tokens_per_s_single = 0;  // one sequence alone
  int64_t decode_batch = 0;               // min(concurrency, max_concurrent_seqs)
  double decode_tokens_per_s_total = 0;   // all sequences of decode_batch together
};

LayoutEstimate estimate_layout(const ModelConfig& c, const WeightInventory& inv, const Layout& l,
                               const Cluster& cluster, const ServingRequest& req, const Calibration& cal);

// Peak live activation bytes of one engine step on one GPU, before activation_factor.
int64_t activation_bytes(const ModelConfig& c, const Layout& l, const ServingRequest& req);

// Bytes one GPU sends per generated token, split by the group the traffic runs in.
struct CommBytes {
  double tp = 0;  // all-reduces / gathers inside a TP group
  double ep = 0;  // all-to-all dispatch + combine inside the EP group
  double pp = 0;  // hidden state to the next pipeline stage
  int n_tp_ops = 0;  // collectives per step, each paying a latency whatever its size
  int n_ep_ops = 0;
  int n_pp_ops = 0;
  double total() const { return tp + ep + pp; }
};
CommBytes comm_bytes_per_token(const ModelConfig& c, const Layout& l, int first_layer, int end_layer,
                               bool first_stage, bool last_stage, bool fp8_dispatch);

}  // namespace dsi::plan
