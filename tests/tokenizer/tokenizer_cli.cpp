// The tokenize and detokenize subcommands alone, so that the tokenizer's command-line tests
// can run without building the rest of the engine. The same code runs in `dsinfer`.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"tokenizer commands of dsinfer"};
  app.require_subcommand(1);
  dsi::init_logging("warn");  // logs to stderr; stdout carries the JSON lines
  dsi::register_tokenizer_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dsi::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
