#pragma once
// Resolves `--model`: a built-in name (the published config.json kept in the binary), a
// checkpoint folder (its config.json) or a config.json path. A missing file, a folder without
// config.json, or a config that is not DeepSeek is an Error naming it.
#include <string>

#include "model/config.h"

namespace dsi::plan {

struct ModelSource {
  std::string name;    // built-in name, or the path given
  std::string origin;  // "built-in (deepseek-ai/DeepSeek-V3 config.json)" or the file read
  ModelConfig config;
};

ModelSource load_model_source(const std::string& arg);

// "deepseek-v2-lite, deepseek-v2, ..." for help texts and errors.
std::string builtin_model_list();

}  // namespace dsi::plan
