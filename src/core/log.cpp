#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace dsi {

void init_logging(std::string_view level) {
  if (const char* env = std::getenv("DSINFER_LOG")) level = env;
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off")
    fail("unknown log level '{}' (trace, debug, info, warn, error, off)", level);
  auto logger = spdlog::get("dsinfer");
  if (!logger) logger = spdlog::stderr_color_mt("dsinfer");
  logger->set_pattern("%^[%Y-%m-%d %H:%M:%S.%e %L]%$ %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
}

}  // namespace dsi
