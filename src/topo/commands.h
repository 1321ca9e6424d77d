#pragma once
#include <CLI/CLI.hpp>

namespace dsi {
// `dsinfer topo`: the GPUs, their links and placement of ranks, through NVML.
void register_topo_commands(CLI::App& app);
}  // namespace dsi
