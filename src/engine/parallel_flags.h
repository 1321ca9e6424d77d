#pragma once
// The parallel-layout flags of logits, generate and serve (docs/multi-rank.md):
// --tensor-parallel-size (vLLM's -tp), --expert-parallel-size, --data-parallel-size,
// --enable-expert-parallel, --collective-timeout, --device-collectives.
#include <CLI/CLI.hpp>

#include "parallel/parallel_context.h"

namespace dsi {

void add_parallel_flags(CLI::App* cmd, ParallelOptions& options);

// CLI11 takes one-letter short options only: vLLM's `-tp N` / `-tp=N` and `-dp N` / `-dp=N`
// are rewritten to --tensor-parallel-size / --data-parallel-size before parsing (argv is left alone; the result owns the strings).
std::vector<std::string> expand_short_parallel_flags(int argc, char** argv);

}  // namespace dsi
