// estimate_layout: memory, capacity, communication and decode speed of one layout.
#include <algorithm>
#include <cmath>

#include "core/int_math.h"
#include "plan/layout.h"
#include "plan/stage.h"

namespace dsi::plan {

namespace {

// What one stage needs for the speed model, per GPU.
struct StageCost {
  StageRange range;
  int64_t weight_bytes = 0;  // this GPU's shard
  int64_t routed_bytes = 0;  // of which routed experts (read only when a token picks them)
  double active_params = 0;  // per token, whole stage
  int64_t kv_bytes_per_token = 0;
  CommBytes comm;
};

StageCost stage_cost(const ModelConfig& c, const WeightInventory& inv, const Layout& l, const StageRange& s,
                     const ServingRequest& req, bool fp8_dispatch) {
  StageCost sc;
  sc.range = s;
  const QuantBlock block = QuantBlock::of(c);
  sc.weight_bytes = stage_weight_bytes(inv, l, s, req.weights, block, req.with_mtp);
  const double k_share = c.n_routed_experts > 0 ? double(c.num_experts_per_tok) / c.n_routed_experts : 0;
  for (int i = s.first_layer; i < s.end_layer; ++i)
    for (const WeightTensor& t : inv.layers[i].tensors) {
      const bool routed = t.group == ParamGroup::routed_experts;
      sc.active_params += double(t.n_params()) * (routed ? k_share : 1.0);
      if (routed) sc.routed_bytes += shard_bytes(t, l, req.weights, block);
    }
  if (s.last_stage)
    for (const WeightTensor& t : inv.head) sc.active_params += double(t.n_params());
  const int n_kv_layers = s.n_layers() + (s.last_stage && req.with_mtp ? c.num_nextn_predict_layers : 0);
  sc.kv_bytes_per_token = kv_bytes_per_token(c, req.kv, n_kv_layers);
  sc.comm = comm_bytes_per_token(c, l, s.first_layer, s.end_layer, s.first_stage, s.last_stage, fp8_dispatch);
  return sc;
}

struct Links {
  double intra = 0;  // bytes/s one GPU sends to another GPU of its node
  double inter = 0;  // bytes/s one GPU sends to another node
};

struct CommTime {
  double per_token_s = 0;  // bandwidth: scales with the tokens a GPU sends
  double per_step_s = 0;   // latency: one per collective, whatever its size
};

// A group inside one node runs at the node's link speed, a group across nodes at the network's;
// an all-to-all splits its destinations between the two.
CommTime comm_time(const CommBytes& b, const Layout& l, int gpus_per_node, int n_nodes, Links links,
                   const Calibration& cal) {
  const bool tp_crosses = l.tp > gpus_per_node;
  const int group = l.stage_gpus();
  const bool ep_crosses = group > gpus_per_node;
  const bool pp_crosses = n_nodes > 1 && group >= gpus_per_node;
  CommTime t;
  t.per_token_s = b.tp / (tp_crosses ? links.inter : links.intra);
  if (group > 1 && b.ep > 0) {
    const double intra_share = double(std::min(group, gpus_per_node) - 1) / (group - 1);
    t.per_token_s += b.ep * intra_share / links.intra + b.ep * (1 - intra_share) / links.inter;
  }
  t.per_token_s += b.pp / (pp_crosses ? links.inter : links.intra);
  auto latency = [&](bool crosses) { return 1e-6 * (crosses ? cal.network_latency_us : cal.collective_latency_us); };
  t.per_step_s = b.n_tp_ops * latency(tp_crosses) + b.n_ep_ops * latency(ep_crosses) + b.n_pp_ops * latency(pp_crosses);
  return t;
}

// Seconds for one decode step of a stage that carries n_tokens tokens (docs/plan.md "Decode
// speed"): the slower of reading weights + KV and the tensor-core work, plus sending the
// tokens' traffic, the collectives' latencies and the per-layer kernel overhead.
double stage_step_seconds(const ModelConfig& c, const Layout& l, const StageCost& s, int64_t n_tokens,
                          const ServingRequest& req, const GpuSpec& gpu, const Calibration& cal, CommTime comm) {
  const int64_t tokens_per_replica = ceil_div(n_tokens, l.dp);
  const double e = c.n_routed_experts;
  const double hit =
      c.n_routed_experts > 0 ? 1.0 - std::pow(1.0 - c.num_experts_per_tok / e, double(n_tokens)) : 0.0;
  const double bytes = double(s.weight_bytes - s.routed_bytes) + double(s.routed_bytes) * hit +
                       double(tokens_per_replica) * double(req.context) * double(s.kv_bytes_per_token);
  const double memory_s = bytes / (gpu.hbm_gbs * 1e9 * cal.hbm_efficiency);
  // Linear layers: 2 FLOPs per active parameter and token, spread over the stage's GPUs.
  // Absorbed MLA decode: per head, a latent (kv_lora_rank) + rope score and a latent-sized
  // weighted sum over every cached token.
  const double linear_flops = 2.0 * double(n_tokens) * s.active_params / l.stage_gpus();
  const double attn_flops = 2.0 * double(tokens_per_replica) * double(req.context) * double(c.n_heads / l.tp) *
                            double(2 * c.kv_lora_rank + c.qk_rope_head_dim) * s.range.n_layers();
  const bool fp8_math = req.weights == WeightDtype::fp8 && gpu.has_fp8();
  const double peak = (fp8_math ? gpu.fp8_tflops : gpu.bf16_tflops) * 1e12 * cal.compute_efficiency;
  const double compute_s = (linear_flops + attn_flops) / peak;
  return std::max(memory_s, compute_s) + double(tokens_per_replica) * comm.per_token_s + comm.per_step_s +
         1e-6 * cal.kernel_overhead_us_per_layer * s.range.n_layers();
}

}  // namespace

LayoutEstimate estimate_layout(const ModelConfig& c, const WeightInventory& inv, const Layout& l,
                               const Cluster& cluster, const ServingRequest& req, const Calibration& cal) {
  LayoutEstimate e;
  e.layout = l;
  e.problem = layout_problem(c, l);
  if (e.problem) return e;
  const GpuSpec gpu = cluster.planned_gpu();
  const bool fp8_dispatch = req.weights == WeightDtype::fp8 && gpu.has_fp8();
  std::vector<StageCost> stages;
  for (const StageRange& r : stage_ranges(c.n_layers, l.pp)) stages.push_back(stage_cost(c, inv, l, r, req, fp8_dispatch));

  for (const StageCost& s : stages) {
    e.weight_bytes_per_gpu = std::max(e.weight_bytes_per_gpu, s.weight_bytes);
    e.kv_bytes_per_token_per_gpu = std::max(e.kv_bytes_per_token_per_gpu, s.kv_bytes_per_token);
    e.comm_bytes_per_token = std::max(e.comm_bytes_per_token, s.comm.total());
  }
  e.activation_bytes = std::llround(double(activation_bytes(c, l, req)) * cal.activation_factor);
  e.overhead_bytes = int64_t(cal.fixed_overhead_bytes(l.n_gpus() - 1));
  e.bytes_per_gpu = e.weight_bytes_per_gpu + e.activation_bytes + e.overhead_bytes;
  e.usable_bytes = int64_t(double(gpu.memory_bytes()) * cal.memory_utilization);
  e.kv_bytes_free = e.usable_bytes - e.bytes_per_gpu;
  const int64_t seq_bytes = req.context * e.kv_bytes_per_token_per_gpu;
  e.fits = e.kv_bytes_free >= seq_bytes;
  // TP ranks of one replica hold the same sequences (the MLA latent is per token, not per head,
  // so TP replicates it); DP replicas hold different ones.
  e.max_concurrent_seqs = e.kv_bytes_free > 0 ? e.kv_bytes_free / seq_bytes * l.dp : 0;

  const int g = cluster.gpus_per_node();
  e.comm_crosses_nodes = cluster.n_nodes > 1 && (l.tp > g || l.stage_gpus() > g || (l.pp > 1 && l.stage_gpus() >= g));
  e.decode_batch = std::min(req.concurrency, e.max_concurrent_seqs);
  if (gpu.hbm_gbs <= 0) return e;  // memory-only GPU spec: no speed figures
  const Links links{gpu.link_send_bytes_per_s() * cal.link_efficiency, cal.inter_node_gbs * 1e9 * cal.link_efficiency};
  double single_s = 0, slowest_batch_s = 0;
  const int64_t per_micro_batch = std::max<int64_t>(1, ceil_div(e.decode_batch, l.pp));
  for (const StageCost& s : stages) {
    const CommTime comm = comm_time(s.comm, l, g, cluster.n_nodes, links, cal);
    single_s += stage_step_seconds(c, l, s, 1, req, gpu, cal, comm);
    slowest_batch_s = std::max(slowest_batch_s, stage_step_seconds(c, l, s, per_micro_batch, req, gpu, cal, comm));
  }
  e.decode_tokens_per_s_single = 1.0 / single_s;
  // Micro-batches of decode_batch / pp keep every stage busy: a token of each sequence every
  // pp stage steps.
  if (e.decode_batch > 0) e.decode_tokens_per_s_total = double(e.decode_batch) / (l.pp * slowest_batch_s);
  return e;
}

}  // namespace dsi::plan
