#pragma once
// The flags every command that runs the model shares: --device and --dtype (the backend), and
// the debug dump flags (--dump-tensors, --dump-layers, --dump-dir) where a command offers them.
#include <CLI/CLI.hpp>
#include <string>

#include "engine/model_runner.h"

namespace dsi {

void add_device_flags(CLI::App* cmd, BackendOptions& options);

struct DumpFlags {
  std::string tensors, layers, dir;
  DumpOptions parse() const { return DumpOptions::parse(tensors, layers, dir); }
};
void add_dump_flags(CLI::App* cmd, DumpFlags& flags);

}  // namespace dsi
