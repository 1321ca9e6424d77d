#pragma once
// Data files linked into the binary (see CMakeLists.txt, dsi_embed), so that `dsinfer plan
// --model deepseek-v3` works with no files around: the published config.json of each built-in
// model, byte for byte, and the GPU table.
#include <string_view>
#include <vector>

namespace dsi::plan {

struct BuiltinModel {
  std::string_view name;         // what --model accepts, e.g. "deepseek-v3"
  std::string_view hub_repo;     // where the file was published, e.g. "deepseek-ai/DeepSeek-V3"
  std::string_view config_json;  // the file's bytes
};

const std::vector<BuiltinModel>& builtin_models();
std::string_view asset_gpus_json();

}  // namespace dsi::plan
