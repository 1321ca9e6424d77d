#pragma once
#include <CLI/CLI.hpp>

namespace dsi {
// `dsinfer bench`: a load generator for any OpenAI-compatible server.
void register_bench_commands(CLI::App& app);
}  // namespace dsi
