#pragma once
// `dsinfer tokenize` and `dsinfer detokenize`: JSON lines in, one JSON line out per input.
#include <CLI/CLI.hpp>

namespace dsi {

void register_tokenizer_commands(CLI::App& app);

}  // namespace dsi
