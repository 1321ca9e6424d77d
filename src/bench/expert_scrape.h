#pragma once
// The expert load of a dsinfer server while a benchmark runs: /metrics scraped on a thread of
// its own every interval (dsinfer_expert_load_* series, docs/metrics.md), kept as a time series
// of imbalances plus the latest tokens-per-expert matrix, for the result file and its plot.
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/bench_report.h"
#include "bench/stream_client.h"

namespace dsi::bench {

// One scrape's expert load; empty layers: the server publishes none (a dense model, not dsinfer).
struct ExpertSnapshot {
  double t = 0;  // seconds since the run began
  std::vector<int> layers;                    // ascending
  std::vector<std::vector<double>> tokens;    // [layer][expert] over the server's window
  std::vector<double> imbalance;              // per layer
  double overall = 0;
};
ExpertSnapshot expert_snapshot(const ServerCounters& counters);

// {"layers", "n_experts", "tokens" (the last snapshot), "samples": [{"t", "overall",
// "imbalance"}]}, or null without any expert series.
Json expert_load_json(const std::vector<ExpertSnapshot>& snapshots, double interval_s);

class ExpertScraper {
 public:
  // Starts scraping now; interval_s <= 0: never.
  ExpertScraper(const ServerAddress& address, std::string api_key, double interval_s);
  ~ExpertScraper();
  // Stops and returns what was seen (expert_load_json).
  Json finish();

 private:
  void loop();
  ServerAddress address_;
  std::string api_key_;
  double interval_s_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<ExpertSnapshot> snapshots_;
  std::thread thread_;
};

}  // namespace dsi::bench
