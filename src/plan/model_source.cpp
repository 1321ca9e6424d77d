#include "plan/model_source.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/mapped_file.h"
#include "plan/assets.h"

namespace dsi::plan {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// ModelConfig::from_json rejects other model types with a message naming the field; say first,
// in words, that the file is not a DeepSeek config at all.
ModelConfig parse_deepseek(std::string_view text, const std::string& what) {
  Json j = parse_json(text, what);
  if (!j.is_object()) fail("{}: expected a JSON object (a Hugging Face config.json)", what);
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string())
    fail("{}: not a DeepSeek config.json (no string field 'model_type'; expected deepseek_v2 or deepseek_v3)", what);
  std::string type = mt->get<std::string>();
  if (type != "deepseek_v2" && type != "deepseek_v3")
    fail("{}: not a DeepSeek-V2/V3 config (model_type = \"{}\"; dsinfer plans deepseek_v2 and deepseek_v3 models)",
         what, type);
  return ModelConfig::from_json(j, what);
}

}  // namespace

std::string builtin_model_list() {
  std::string s;
  for (const BuiltinModel& m : builtin_models()) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

ModelSource load_model_source(const std::string& arg) {
  if (arg.empty()) fail("--model is empty (give {}, a checkpoint folder or a config.json)", builtin_model_list());
  for (const BuiltinModel& m : builtin_models()) {
    // The hub id (deepseek-ai/DeepSeek-V3, as `vllm serve` takes it) names the same config.
    if (lower(arg) == m.name || lower(arg) == lower(std::string(m.hub_repo))) {
      std::string origin = fmt::format("built-in: {} config.json", m.hub_repo);
      return {std::string(m.name), origin, parse_deepseek(m.config_json, std::string(m.name))};
    }
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(arg);
  if (fs::is_directory(p, ec)) {
    fs::path cfg = p / "config.json";
    if (!fs::is_regular_file(cfg, ec)) fail("--model {}: the folder has no config.json", arg);
    p = cfg;
  } else if (!fs::exists(p, ec)) {
    fail("--model {}: no such file or folder, and not a built-in model ({})", arg, builtin_model_list());
  }
  std::string path = p.string();
  return {arg, path, parse_deepseek(read_text_file(path), path)};
}

}  // namespace dsi::plan
