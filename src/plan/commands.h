#pragma once
// `dsinfer plan`: whether a DeepSeek model fits on given GPUs and how to lay it out.
#include <CLI/CLI.hpp>

namespace dsi {

// Adds the `plan` subcommand to app; its callback prints the plan to stdout.
void register_plan_commands(CLI::App& app);

}  // namespace dsi
