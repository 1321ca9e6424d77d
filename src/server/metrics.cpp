#include "server/metrics.h"

#include <fmt/format.h>

namespace dsi::server {

namespace {

// Bucket bounds in the spirit of vLLM's: fine where interactive serving lives, coarse tails.
std::vector<double> ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> tpot_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0};
}
std::vector<double> phase_buckets() {  // queue, prefill, decode, inference, e2e
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 120.0, 300.0, 600.0};
}
std::vector<double> token_count_buckets() {
  return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000};
}

double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

}  // namespace

ServerMetrics::ServerMetrics(std::string model_name)
    : model_name_(std::move(model_name)),
      ttft_(ttft_buckets()),
      tpot_(tpot_buckets()),
      itl_(tpot_buckets()),
      e2e_(phase_buckets()),
      queue_(phase_buckets()),
      prefill_(phase_buckets()),
      decode_(phase_buckets()),
      inference_(phase_buckets()),
      prompt_len_(token_count_buckets()),
      generation_len_(token_count_buckets()) {}

void ServerMetrics::count_response(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++responses_[{route, status}];
}

void ServerMetrics::record_request(const RequestTiming& t) {
  std::lock_guard lock(mutex_);
  if (t.time_to_first_token >= 0) ttft_.observe(t.time_to_first_token);
  if (t.time_per_output_token >= 0) tpot_.observe(t.time_per_output_token);
  for (double gap : t.inter_token_latencies) itl_.observe(gap);
  e2e_.observe(t.e2e_latency);
  if (t.queue_time >= 0) queue_.observe(t.queue_time);
  if (t.prefill_time >= 0) prefill_.observe(t.prefill_time);
  if (t.decode_time >= 0) decode_.observe(t.decode_time);
  if (t.inference_time >= 0) inference_.observe(t.inference_time);
  prompt_len_.observe(t.n_prompt_tokens);
  generation_len_.observe(t.n_generation_tokens);
  ++finished_[t.finish_reason];
}

void ServerMetrics::connection_opened() {
  std::lock_guard lock(mutex_);
  ++n_connections_open_;
  ++n_connections_total_;
}

void ServerMetrics::connection_closed() {
  std::lock_guard lock(mutex_);
  --n_connections_open_;
}

void ServerMetrics::render_engine(Exposition& x, const EngineStats& e) const {
  const double usage = ratio(double(e.kv_blocks_used), double(e.kv_blocks_total));
  for (const char* name : {"dsinfer_num_requests_running", "vllm:num_requests_running"})
    x.scalar(name, "gauge", "Sequences in the running batch.", e.n_running);
  for (const char* name : {"dsinfer_num_requests_waiting", "vllm:num_requests_waiting"})
    x.scalar(name, "gauge", "Sequences queued and not running (just submitted, waiting, or preempted).", e.n_waiting);
  x.scalar("dsinfer_kv_cache_num_blocks", "gauge", "KV cache blocks in the pool.", double(e.kv_blocks_total));
  x.scalar("dsinfer_kv_cache_blocks_used", "gauge", "KV cache blocks held by sequences.", double(e.kv_blocks_used));
  x.scalar("dsinfer_kv_cache_blocks_cached", "gauge", "Free KV cache blocks that still hold a reusable prefix.",
           double(e.kv_blocks_cached));
  x.scalar("dsinfer_kv_cache_usage_ratio", "gauge", "Fraction of KV cache blocks held by sequences.", usage);
  x.scalar("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", usage);
  for (const char* name : {"dsinfer_prefix_cache_queries_total", "vllm:prefix_cache_queries_total"})
    x.scalar(name, "counter", "Prompt tokens looked up in the prefix cache, at each request's first admission.",
             double(e.prefix_queried_tokens));
  for (const char* name : {"dsinfer_prefix_cache_hits_total", "vllm:prefix_cache_hits_total"})
    x.scalar(name, "counter", "Prompt tokens found in the prefix cache.", double(e.prefix_hit_tokens));
  x.scalar("dsinfer_prefix_cache_hit_rate", "gauge", "Prefix cache hits over queries, in tokens, since start.",
           ratio(double(e.prefix_hit_tokens), double(e.prefix_queried_tokens)));
  for (const char* name : {"dsinfer_prompt_tokens_total", "vllm:prompt_tokens_total"})
    x.scalar(name, "counter", "Prompt tokens computed (prefix cache hits excluded).", double(e.prompt_tokens_total));
  for (const char* name : {"dsinfer_generation_tokens_total", "vllm:generation_tokens_total"})
    x.scalar(name, "counter", "Tokens generated.", double(e.generation_tokens_total));
  for (const char* name : {"dsinfer_num_preemptions_total", "vllm:num_preemptions_total"})
    x.scalar(name, "counter", "Sequences preempted (recomputed later) for lack of KV blocks.",
             double(e.preemptions_total));
  x.scalar("dsinfer_engine_steps_total", "counter", "Engine steps run.", double(e.steps_total));
  x.family("dsinfer_engine_step_seconds_total", "counter",
           "Engine step time by phase: schedule (batching and bookkeeping), forward (the model, expert-count "
           "readback included), communication (between ranks), sampling.");
  x.sample("dsinfer_engine_step_seconds_total", e.scheduler_seconds_total, "phase=\"schedule\"");
  x.sample("dsinfer_engine_step_seconds_total", e.forward_seconds_total, "phase=\"forward\"");
  x.sample("dsinfer_engine_step_seconds_total", e.communication_seconds_total, "phase=\"communication\"");
  x.sample("dsinfer_engine_step_seconds_total", e.sampling_seconds_total, "phase=\"sampling\"");

  const RunnerMemory& m = e.memory;
  x.family("dsinfer_device_memory_bytes", "gauge", "Backend memory the model holds, by device and use.");
  const std::string device = prometheus_label_value(m.device);
  x.sample("dsinfer_device_memory_bytes", double(m.weight_bytes), fmt::format("device=\"{}\",kind=\"weights\"", device));
  x.sample("dsinfer_device_memory_bytes", double(m.kv_cache_bytes), fmt::format("device=\"{}\",kind=\"kv_cache\"", device));
  x.sample("dsinfer_device_memory_bytes", double(m.workspace_bytes),
           fmt::format("device=\"{}\",kind=\"workspace\"", device));
  x.sample("dsinfer_device_memory_bytes", double(m.device_free_bytes), fmt::format("device=\"{}\",kind=\"free\"", device));
  x.sample("dsinfer_device_memory_bytes", double(m.device_total_bytes),
           fmt::format("device=\"{}\",kind=\"total\"", device));
  if (e.data_parallel.size() > 1) {
    // Data-parallel attention: where rank 0 placed the requests, and each rank's load.
    x.family("dsinfer_dp_requests_placed_total", "counter", "Requests placed on each data-parallel rank since start.");
    for (size_t d = 0; d < e.data_parallel.size(); ++d)
      x.sample("dsinfer_dp_requests_placed_total", double(e.data_parallel[d].requests_placed),
               fmt::format("dp_rank=\"{}\"", d));
    x.family("dsinfer_dp_num_requests_running", "gauge", "Sequences running on each data-parallel rank.");
    for (size_t d = 0; d < e.data_parallel.size(); ++d)
      x.sample("dsinfer_dp_num_requests_running", e.data_parallel[d].n_running, fmt::format("dp_rank=\"{}\"", d));
    x.family("dsinfer_dp_kv_cache_blocks_used", "gauge", "KV cache blocks held on each data-parallel rank.");
    for (size_t d = 0; d < e.data_parallel.size(); ++d)
      x.sample("dsinfer_dp_kv_cache_blocks_used", double(e.data_parallel[d].kv_blocks_used),
               fmt::format("dp_rank=\"{}\"", d));
  }
  render_expert_load(x, e.expert_load);
}

void ServerMetrics::render_expert_load(Exposition& x, const ExpertLoad& load) const {
  if (load.moe_layers.empty()) return;  // a dense model: no series rather than empty ones
  x.scalar("dsinfer_expert_load_window_steps", "gauge", "Engine steps the expert-load window holds.", load.n_steps);
  x.family("dsinfer_expert_load_tokens", "gauge",
           "Tokens routed to each expert of each MoE layer over the window (a token counts once per chosen expert).");
  for (size_t i = 0; i < load.moe_layers.size(); ++i) {
    auto row = load.row(i);
    for (size_t k = 0; k < row.size(); ++k)
      x.sample("dsinfer_expert_load_tokens", double(row[k]), fmt::format("layer=\"{}\",expert=\"{}\"", load.moe_layers[i], k));
  }
  x.family("dsinfer_expert_load_imbalance", "gauge",
           "Busiest expert's tokens over the mean per expert, per MoE layer, over the window (1: balanced; 0: no tokens).");
  for (size_t i = 0; i < load.moe_layers.size(); ++i)
    x.sample("dsinfer_expert_load_imbalance", expert_imbalance(load.row(i)), fmt::format("layer=\"{}\"", load.moe_layers[i]));
  x.scalar("dsinfer_expert_load_imbalance_overall", "gauge",
           "Sum over MoE layers of the busiest expert's tokens over the sum of the means, over the window: the step "
           "slowdown against perfect balance under expert parallelism (0: no tokens).",
           expert_imbalance_overall(load));
}

std::string ServerMetrics::render(const EngineStats& e) const {
  Exposition x(model_name_);
  render_engine(x, e);

  std::lock_guard lock(mutex_);
  x.family("dsinfer_http_requests_total", "counter", "HTTP responses by route and status code.");
  for (const auto& [key, n] : responses_)
    x.sample("dsinfer_http_requests_total", double(n),
             fmt::format("route=\"{}\",status=\"{}\"", prometheus_label_value(key.first), key.second));
  for (const char* name : {"dsinfer_request_success_total", "vllm:request_success_total"}) {
    x.family(name, "counter", "Finished generation requests by finish reason.");
    for (const auto& [reason, n] : finished_)
      x.sample(name, double(n), fmt::format("finished_reason=\"{}\"", prometheus_label_value(reason)));
  }
  x.scalar("dsinfer_http_connections_open", "gauge", "Open client connections.", double(n_connections_open_));
  x.scalar("dsinfer_http_connections_total", "counter", "Client connections accepted.", double(n_connections_total_));

  // Each histogram under both names: the same observations.
  struct Named {
    const char* ours;
    const char* vllm;
    const char* help;
    const Histogram& h;
  };
  const Named histograms[] = {
      {"dsinfer_time_to_first_token_seconds", "vllm:time_to_first_token_seconds",
       "Time from arrival to the first generated token.", ttft_},
      {"dsinfer_inter_token_latency_seconds", "vllm:inter_token_latency_seconds",
       "Time between consecutive token events of a request.", itl_},
      {"dsinfer_time_per_output_token_seconds", "vllm:request_time_per_output_token_seconds",
       "Mean time between output tokens after the first, per request.", tpot_},
      {"dsinfer_e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds",
       "Time from arrival to the last event, per request.", e2e_},
      {"dsinfer_request_queue_time_seconds", "vllm:request_queue_time_seconds",
       "Time from arrival to the first batch the request entered.", queue_},
      {"dsinfer_request_prefill_time_seconds", "vllm:request_prefill_time_seconds",
       "Time from the first batch to the first generated token.", prefill_},
      {"dsinfer_request_decode_time_seconds", "vllm:request_decode_time_seconds",
       "Time from the first generated token to the last.", decode_},
      {"dsinfer_request_inference_time_seconds", "vllm:request_inference_time_seconds",
       "Time from the first batch to the last generated token.", inference_},
      {"dsinfer_request_prompt_tokens", "vllm:request_prompt_tokens", "Prompt length of finished requests.",
       prompt_len_},
      {"dsinfer_request_generation_tokens", "vllm:request_generation_tokens",
       "Generated tokens of finished requests.", generation_len_},
  };
  for (const Named& n : histograms) {
    x.histogram(n.ours, n.help, n.h);
    x.histogram(n.vllm, n.help, n.h);
  }
  return std::move(x.text());
}

}  // namespace dsi::server
