#pragma once
// What a benchmark measured: throughput, latency percentiles and failures, as a table for
// people and a JSON document for scripts.
#include <map>
#include <string>
#include <vector>

#include "bench/bench_options.h"
#include "bench/load_generator.h"
#include "core/json.h"

namespace dsi::bench {

struct Distribution {
  int64_t count = 0;
  double mean = 0, std = 0, min = 0, max = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0;  // std: population
};
// Percentiles by linear interpolation between order statistics (numpy's default).
Distribution distribution(std::vector<double> values);

// The dsinfer_ series of a dsinfer server's /metrics (empty when there is none), keyed
// `name` or `name{label="v",...}` as written, without the model_name label every series has.
using ServerCounters = std::map<std::string, double>;
ServerCounters parse_server_counters(const std::string& prometheus_text);
// The `name="value"` items of a label set (the text between its braces).
std::vector<std::string> split_labels(const std::string& inside);

struct BenchReport {
  std::string base_url, endpoint, model;
  int num_prompts = 0;
  int concurrency = 0;
  double request_rate = 0;
  double duration_s = 0;
  int64_t completed = 0, failed = 0;
  std::vector<std::string> errors;  // the first few distinct ones
  int64_t total_input_tokens = 0, total_output_tokens = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  Distribution ttft_ms, tpot_ms, itl_ms, e2e_ms;
  std::map<std::string, double> goodput_ms;  // the SLOs asked for (empty: no goodput)
  int64_t n_good = 0;                        // completed requests meeting every SLO
  double request_goodput = 0;                // n_good per second
  std::string dataset_name;
  std::string date;  // local time of the run, vLLM's format (YYYYmmdd-HHMMSS)
  // Per request, in prompt order, the completed ones: what vLLM's result files carry.
  std::vector<int64_t> input_lens, output_lens;
  std::vector<double> ttfts;               // seconds
  std::vector<std::vector<double>> itls;   // seconds
  Json server;       // dsinfer's engine counters over the run, or null
  Json expert_load;  // dsinfer's expert load scraped during the run, or null
};

// Parses `--goodput ttft:MS tpot:MS e2el:MS` items into goodput_ms.
std::map<std::string, double> parse_goodput(const std::vector<std::string>& items);

BenchReport make_report(const BenchOptions& opts, const std::string& model, const LoadRun& run,
                        const ServerCounters& before, const ServerCounters& after);
std::string format_table(const BenchReport& r);
// One line per point of a sweep over concurrencies or request rates.
std::string format_sweep(const std::vector<BenchReport>& reports);
Json report_json(const BenchReport& r);

}  // namespace dsi::bench
