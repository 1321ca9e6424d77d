#pragma once
// Logging goes to stderr through spdlog; stdout is reserved for command results (JSON lines,
// tables) so that scripts can pipe them.
#include <spdlog/spdlog.h>

#include <string_view>

namespace dsi {

// Level names as spdlog spells them: trace, debug, info, warn, error, off.
// The DSINFER_LOG environment variable overrides the default.
void init_logging(std::string_view level = "info");

}  // namespace dsi
