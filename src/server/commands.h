#pragma once
#include <CLI/CLI.hpp>

namespace dsi {
// `dsinfer serve`: the OpenAI-compatible HTTP server.
void register_server_commands(CLI::App& app);
}  // namespace dsi
