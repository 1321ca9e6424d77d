#pragma once
// The DeepSeek-V2/V3 forward pass, written once as math over the shared op layer (MATH.md).
// It owns no kernels, no allocation and no scheduling: the caller hands it a workspace whose
// step context holds the step's tokens and KV slots, and it returns the logits of the rows the
// step asks for. Every intermediate has a name (model/tensor_dump.h) for debug dumps.
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/expert_exchange.h"
#include "model/rope.h"
#include "model/tensor_dump.h"
#include "model/weights.h"
#include "model/workspace.h"
#include "parallel/parallel_context.h"

namespace dsi {

class DeepSeekModel {
 public:
  // `weights` must be in backend memory (upload_weights); the backend must outlive the model.
  // Under a parallel layout `config` is this rank's (local_config in model/sharding.h),
  // `weights` its slices (shard_weights), and `parallel` holds the device collectives over
  // `backend` (ModelRunner makes them); every rank of `parallel` must run every forward.
  DeepSeekModel(ModelConfig config, ModelWeights weights, Backend& backend, ParallelContext parallel = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  Backend& backend() const { return backend_; }

  // Runs the tokens of ws.step (begun for this step) through the model, writing their latent
  // KV rows into `cache`, and copies the logits of the step's first logit rows into `logits`
  // ([rows, vocab], host, rows <= n_logit_rows: a padded step's padding rows are not copied).
  // Also leaves each MoE layer's expert counts in ws.expert_counts. With `graph_key` the
  // step's device work runs as the backend's recording of that key (Backend::run_recorded;
  // engine/step_padding.h makes the keys). Not thread-safe: one forward at a time per model.
  void forward(Workspace& ws, const KvCacheView& cache, std::span<float> logits,
               std::optional<uint64_t> graph_key = std::nullopt);
  // Whether this model's steps may be recorded: one rank and no debug dump. A step of several
  // ranks runs eagerly whatever carries its collectives: the host path copies through host
  // memory, and NCCL's calls wait for the stream against the collective timeout
  // (NcclCommunicator), which no graph capture allows.
  bool recordable() const { return !dump_ && !(parallel_.world && parallel_.world->size() > 1); }

  // Data-parallel attention: a step in which this rank has no tokens. It still joins every MoE
  // layer's expert exchange, running its experts for the other ranks' tokens.
  void idle_forward(Workspace& ws);
  bool data_parallel() const { return exchange_ != nullptr; }

  // Debug: record the chosen intermediates of every forward into `dump` (null: none).
  void set_dump(TensorDump* dump) { dump_ = dump; }

 private:
  struct Rows;
  // Every layer, then the final norm and lm_head of the logit rows into ws.logits.
  void forward_device(Workspace& ws, const KvCacheView& cache);
  void attention(int layer, const StepContext& ctx, const KvCacheView& cache, const Rows& s);
  void feed_forward(int layer, const Rows& s, Workspace& ws);
  // Writes the routed experts' weighted sum plus `shared` (the shared experts' output, or empty).
  void routed_experts(int layer, const Rows& s, Workspace& ws, const Tensor& shared);
  // In place: t = sum of t over the ranks of `group` (device_collectives.h); none: one rank.
  static void all_reduce(DeviceCollectives* group, Tensor t) {
    if (group) group->all_reduce_sum(t);
  }
  void dump(int layer, const char* name, const Tensor& t) const {
    if (dump_ && dump_->wants(layer, name)) dump_->record(layer, name, t);
  }

  ModelConfig config_;
  ModelWeights weights_;
  Backend& backend_;
  RopeTable rope_;
  Buffer inv_freq_;  // rope_.inv_freq in backend memory
  MlaShape mla_;
  RoutingParams routing_;
  TensorDump* dump_ = nullptr;
  ParallelContext parallel_;
  // Expert parallelism: this rank's experts [expert_begin_, expert_begin_ + n_local_experts_),
  // the per-step local routing (host) and its counts and offsets (backend memory).
  int expert_begin_ = 0, n_local_experts_ = 0;
  Buffer local_counts_, local_offsets_;
  std::vector<int32_t> host_ids_, host_counts_;
  std::vector<float> host_weights_;
  std::vector<std::byte> zeros_;
  // Data-parallel attention: the all-to-all dispatch and combine of the routed experts.
  std::unique_ptr<ExpertExchange> exchange_;
  std::vector<int32_t> no_counts_;
};

}  // namespace dsi
