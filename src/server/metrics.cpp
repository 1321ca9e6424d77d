#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace dsi::server {

namespace {

// Bucket bounds in the spirit of vLLM's: fine where interactive serving lives, coarse tails.
std::vector<double> ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> tpot_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0};
}
std::vector<double> e2e_buckets() {
  return {0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 120.0, 300.0, 600.0};
}
std::vector<double> token_count_buckets() {
  return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000};
}

// Prometheus floats: shortest round-trip form, and +Inf / NaN spelled its way.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void scalar(std::string& out, const std::string& name, const char* type, const char* help, double value) {
  header(out, name, type, help);
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, number(value));
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {
  std::sort(upper_bounds_.begin(), upper_bounds_.end());
}

void Histogram::observe(double value) {
  // Prometheus buckets are inclusive upper bounds: value <= le.
  size_t i = size_t(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, number(upper_bounds_[i]), cumulative);
  }
  cumulative += counts_.back();
  fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative,
                 name, number(sum_), name, count_);
}

ServerMetrics::ServerMetrics()
    : ttft_(ttft_buckets()),
      tpot_(tpot_buckets()),
      e2e_(e2e_buckets()),
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
  e2e_.observe(t.e2e_latency);
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

std::string ServerMetrics::render(const EngineStats& e) const {
  std::string out;
  out.reserve(8192);
  auto it = std::back_inserter(out);

  // Engine state at scrape time.
  scalar(out, "dsinfer_num_requests_running", "gauge", "Sequences in the running batch.", e.n_running);
  scalar(out, "dsinfer_num_requests_waiting", "gauge",
         "Sequences queued and not running (just submitted, waiting, or preempted).", e.n_waiting);
  scalar(out, "dsinfer_kv_cache_blocks_total", "gauge", "KV cache blocks in the pool.", double(e.kv_blocks_total));
  scalar(out, "dsinfer_kv_cache_blocks_used", "gauge", "KV cache blocks held by sequences.", double(e.kv_blocks_used));
  scalar(out, "dsinfer_kv_cache_blocks_cached", "gauge", "Free KV cache blocks that still hold a reusable prefix.",
         double(e.kv_blocks_cached));
  scalar(out, "dsinfer_kv_cache_usage_ratio", "gauge", "Fraction of KV cache blocks held by sequences.",
         e.kv_blocks_total > 0 ? double(e.kv_blocks_used) / double(e.kv_blocks_total) : 0.0);
  scalar(out, "dsinfer_prefix_cache_queries_total", "counter",
         "Prompt tokens looked up in the prefix cache, at each request's first admission.",
         double(e.prefix_queried_tokens));
  scalar(out, "dsinfer_prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.",
         double(e.prefix_hit_tokens));
  scalar(out, "dsinfer_prefix_cache_hit_rate", "gauge", "Prefix cache hits over queries, in tokens, since start.",
         e.prefix_queried_tokens > 0 ? double(e.prefix_hit_tokens) / double(e.prefix_queried_tokens) : 0.0);
  scalar(out, "dsinfer_prompt_tokens_total", "counter", "Prompt tokens computed (prefix cache hits excluded).",
         double(e.prompt_tokens_total));
  scalar(out, "dsinfer_generation_tokens_total", "counter", "Tokens generated.", double(e.generation_tokens_total));
  scalar(out, "dsinfer_num_preemptions_total", "counter", "Sequences preempted (recomputed later) for lack of KV blocks.",
         double(e.preemptions_total));
  scalar(out, "dsinfer_engine_steps_total", "counter", "Engine steps run.", double(e.steps_total));
  scalar(out, "dsinfer_engine_scheduler_seconds_total", "counter",
         "Time spent scheduling and bookkeeping, forward and sampling excluded.", e.scheduler_seconds_total);
  scalar(out, "dsinfer_engine_forward_seconds_total", "counter", "Time spent in model forward passes.",
         e.forward_seconds_total);
  scalar(out, "dsinfer_engine_sampling_seconds_total", "counter", "Time spent sampling.", e.sampling_seconds_total);

  std::lock_guard lock(mutex_);
  header(out, "dsinfer_http_requests_total", "counter", "HTTP responses by route and status code.");
  for (const auto& [key, n] : responses_)
    fmt::format_to(it, "dsinfer_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  header(out, "dsinfer_request_success_total", "counter", "Finished generation requests by finish reason.");
  for (const auto& [reason, n] : finished_)
    fmt::format_to(it, "dsinfer_request_success_total{{finished_reason=\"{}\"}} {}\n", reason, n);
  scalar(out, "dsinfer_http_connections_open", "gauge", "Open client connections.", double(n_connections_open_));
  scalar(out, "dsinfer_http_connections_total", "counter", "Client connections accepted.",
         double(n_connections_total_));

  header(out, "dsinfer_time_to_first_token_seconds", "histogram", "Time from arrival to the first generated token.");
  ttft_.render(out, "dsinfer_time_to_first_token_seconds");
  header(out, "dsinfer_time_per_output_token_seconds", "histogram",
         "Mean time between output tokens after the first, per request.");
  tpot_.render(out, "dsinfer_time_per_output_token_seconds");
  header(out, "dsinfer_e2e_request_latency_seconds", "histogram", "Time from arrival to the last event, per request.");
  e2e_.render(out, "dsinfer_e2e_request_latency_seconds");
  header(out, "dsinfer_request_prompt_tokens", "histogram", "Prompt length of finished requests.");
  prompt_len_.render(out, "dsinfer_request_prompt_tokens");
  header(out, "dsinfer_request_generation_tokens", "histogram", "Generated tokens of finished requests.");
  generation_len_.render(out, "dsinfer_request_generation_tokens");
  return out;
}

}  // namespace dsi::server
