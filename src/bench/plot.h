#pragma once
// `dsinfer bench plot`: bench result files drawn as one SVG (our own writer, no plotting
// library): latency percentiles against output throughput (one point per result: a sweep),
// TTFT and inter-token latency distributions (CDFs, one curve per result), and, from the
// /metrics scrapes of a dsinfer server taken during the run, tokens per expert per layer
// (a heatmap of the last result that has them) and the imbalance over time.
#include <string>
#include <vector>

#include "core/json.h"

namespace dsi::bench {

// `names` label the results (their file names); the SVG's series carry class="series" and
// data-series="NAME", heatmap cells class="cell" with data-layer / data-expert.
std::string plot_results_svg(const std::vector<Json>& results, const std::vector<std::string>& names);

}  // namespace dsi::bench
