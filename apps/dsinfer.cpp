// dsinfer: one binary, one subcommand per job. Each subcommand lives with its module and is
// registered here; this file only dispatches.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "bench/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/commands.h"
#include "plan/commands.h"
#include "server/commands.h"
#include "tokenizer/commands.h"
#include "topo/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"dsinfer: an inference engine for DeepSeek mixture-of-experts models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dsinfer 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off (env DSINFER_LOG)")
      ->capture_default_str();
  app.parse_complete_callback([&] { dsi::init_logging(log_level); });

  // Subcommands, one register call per module that has them.
  dsi::register_engine_commands(app);
  dsi::register_plan_commands(app);
  dsi::register_server_commands(app);
  dsi::register_bench_commands(app);
  dsi::register_tokenizer_commands(app);
  dsi::register_topo_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dsi::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
