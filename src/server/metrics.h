#pragma once
// The server's Prometheus metrics (docs/metrics.md lists every series): its own per-request
// timings and response counts, plus the engine's snapshot at scrape time, under dsinfer_
// names and, where a series means what a vLLM one means, also under vLLM's name and labels
// (so dashboards made for vLLM work unchanged). Every series carries model_name.
// Thread-safe: I/O threads record, any thread renders.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "server/prometheus_text.h"

namespace dsi::server {

// What one engine request (one choice) took, recorded when it ends. Times in seconds; < 0:
// the phase never happened (no token came, never scheduled).
struct RequestTiming {
  double time_to_first_token = -1;    // arrival -> first token
  double time_per_output_token = -1;  // mean gap after the first token; < 0: fewer than 2 tokens
  double e2e_latency = 0;             // arrival -> last event
  int n_prompt_tokens = 0;
  int n_generation_tokens = 0;
  std::string finish_reason;  // stop, length, abort, error
  double queue_time = -1;      // arrival -> first scheduled in a batch
  double prefill_time = -1;    // first scheduled -> first token
  double decode_time = -1;     // first token -> last token
  double inference_time = -1;  // first scheduled -> last token
  std::vector<double> inter_token_latencies;  // each gap between consecutive token events
};

class ServerMetrics {
 public:
  explicit ServerMetrics(std::string model_name);
  // One HTTP response (its status line, streaming included) on a route ("/v1/completions";
  // unknown paths count as "other").
  void count_response(const std::string& route, int status);
  void record_request(const RequestTiming& timing);
  void connection_opened();
  void connection_closed();

  // The whole /metrics document.
  std::string render(const EngineStats& engine) const;

 private:
  void render_engine(Exposition& x, const EngineStats& e) const;
  void render_expert_load(Exposition& x, const ExpertLoad& load) const;

  std::string model_name_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> responses_;  // (route, status) -> count
  std::map<std::string, int64_t> finished_;                   // finish reason -> count
  Histogram ttft_, tpot_, itl_, e2e_, queue_, prefill_, decode_, inference_, prompt_len_, generation_len_;
  int64_t n_connections_open_ = 0;
  int64_t n_connections_total_ = 0;
};

}  // namespace dsi::server
