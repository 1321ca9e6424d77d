#pragma once
// What `dsinfer bench` is asked to do: where the server is, what to send, and how fast.
#include <cstdint>
#include <limits>
#include <map>
#include <string>

namespace dsi::bench {

enum class Endpoint { endpoint_completions, endpoint_chat };

struct BenchOptions {
  std::string base_url = "http://127.0.0.1:8000";  // with or without a trailing /v1
  std::string model;                               // empty: the first of GET /v1/models
  std::string api_key;                             // sent as Bearer when set
  Endpoint endpoint = Endpoint::endpoint_completions;
  // Prompts: a dataset (random: of these lengths; sharegpt: the first two turns of each
  // conversation in dataset_path; prefix-repetition: num_prefixes shared prefixes, each with
  // random suffixes), or a JSON-lines file.
  std::string dataset_name = "random";
  std::string dataset_path;
  int sharegpt_output_len = 0;  // > 0: max_tokens of every ShareGPT request (else its answer's length)
  int prefix_len = 256, suffix_len = 256, num_prefixes = 10, prefix_output_len = 128;
  std::string prompts_file;
  int input_len = 256;
  int output_len = 128;
  double range_ratio = 0;     // lengths uniform in [len * (1 - r), len * (1 + r)]
  std::string prompt_format = "auto";  // auto | ids | text
  int64_t vocab_low = 1000, vocab_high = 30000;  // random token ids come from [low, high)
  bool ignore_eos = true;
  double temperature = 0;
  int num_prompts = 100;
  int num_warmups = 0;
  // Load: at most `concurrency` requests in flight; arrivals Poisson at request_rate per second
  // (infinite: all at once, limited by concurrency).
  int concurrency = 1;
  double request_rate = std::numeric_limits<double>::infinity();
  uint64_t seed = 0;
  double timeout_s = 600;
  std::string result_file;
  bool server_metrics = true;  // read dsinfer's /metrics before and after, when there is one
  double metrics_interval_s = 1;  // and this often during the run, for the expert load over time
  bool progress = true;        // a progress bar, when stderr is a terminal
  // Service-level objectives in ms ("ttft", "tpot", "e2el"): a request meeting all of them is
  // good; request_goodput is good requests per second.
  std::map<std::string, double> goodput_ms;
};

}  // namespace dsi::bench
