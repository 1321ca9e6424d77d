#pragma once
// The server's Prometheus metrics (text exposition format 0.0.4, names prefixed dsinfer_): its
// own per-request timings and response counts, plus the engine's snapshot at scrape time.
// Thread-safe: I/O threads record, any thread renders.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace dsi::server {

// A cumulative histogram with fixed upper bounds (Prometheus "le" buckets). Not thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count lines (HELP and TYPE are the caller's).
  void render(std::string& out, const std::string& name) const;
  int64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> upper_bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; one more for +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

// What one engine request (one choice) took, recorded when it ends.
struct RequestTiming {
  double time_to_first_token = -1;  // seconds from arrival; < 0: no token came
  double time_per_output_token = -1;  // mean gap after the first token; < 0: fewer than 2 tokens
  double e2e_latency = 0;
  int n_prompt_tokens = 0;
  int n_generation_tokens = 0;
  std::string finish_reason;  // stop, length, abort, error
};

class ServerMetrics {
 public:
  ServerMetrics();
  // One HTTP response (its status line, streaming included) on a route ("/v1/completions";
  // unknown paths count as "other").
  void count_response(const std::string& route, int status);
  void record_request(const RequestTiming& timing);
  void connection_opened();
  void connection_closed();

  // The whole /metrics document.
  std::string render(const EngineStats& engine) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> responses_;  // (route, status) -> count
  std::map<std::string, int64_t> finished_;                   // finish reason -> count
  Histogram ttft_, tpot_, e2e_, prompt_len_, generation_len_;
  int64_t n_connections_open_ = 0;
  int64_t n_connections_total_ = 0;
};

}  // namespace dsi::server
