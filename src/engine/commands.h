#pragma once
#include <CLI/CLI.hpp>

namespace dsi {
// `dsinfer logits` and `dsinfer generate`.
void register_engine_commands(CLI::App& app);
}  // namespace dsi
