#pragma once
// Drives a benchmark: sends the prompts with at most `concurrency` in flight, arriving all at
// once or as a Poisson process at `request_rate`, on one Asio thread; returns what each
// request gave, in prompt order.
#include <functional>
#include <vector>

#include "bench/bench_options.h"
#include "bench/prompts.h"
#include "bench/stream_client.h"

namespace dsi::bench {

struct LoadRun {
  std::vector<StreamResult> results;  // one per prompt, in prompt order
  double duration_s = 0;              // first send to last completion
};

// Called on the load's thread after each request ends: (done, total).
using ProgressCallback = std::function<void(size_t, size_t)>;

// Without on_progress, progress goes to the log every 10%.
LoadRun run_load(const BenchOptions& opts, const ServerAddress& address, const std::string& model,
                 const std::vector<BenchPrompt>& prompts, ProgressCallback on_progress = {});

}  // namespace dsi::bench
