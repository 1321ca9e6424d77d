#include "plan/assets.h"

// Symbols made by dsi_embed: [SYMBOL, SYMBOL_end) holds the file's bytes.
#define DSI_ASSET(sym) \
  extern "C" const unsigned char sym[]; \
  extern "C" const unsigned char sym##_end[];
DSI_ASSET(dsi_plan_deepseek_v2_lite_json)
DSI_ASSET(dsi_plan_deepseek_v2_json)
DSI_ASSET(dsi_plan_deepseek_v2_5_json)
DSI_ASSET(dsi_plan_deepseek_v3_json)
DSI_ASSET(dsi_plan_deepseek_v3_0324_json)
DSI_ASSET(dsi_plan_deepseek_r1_json)
DSI_ASSET(dsi_plan_gpus_json)
#undef DSI_ASSET

namespace dsi::plan {

namespace {

std::string_view bytes(const unsigned char* begin, const unsigned char* end) {
  return {reinterpret_cast<const char*>(begin), static_cast<size_t>(end - begin)};
}

}  // namespace

const std::vector<BuiltinModel>& builtin_models() {
  static const std::vector<BuiltinModel> models = {
      {"deepseek-v2-lite", "deepseek-ai/DeepSeek-V2-Lite",
       bytes(dsi_plan_deepseek_v2_lite_json, dsi_plan_deepseek_v2_lite_json_end)},
      {"deepseek-v2", "deepseek-ai/DeepSeek-V2", bytes(dsi_plan_deepseek_v2_json, dsi_plan_deepseek_v2_json_end)},
      {"deepseek-v2.5", "deepseek-ai/DeepSeek-V2.5",
       bytes(dsi_plan_deepseek_v2_5_json, dsi_plan_deepseek_v2_5_json_end)},
      {"deepseek-v3", "deepseek-ai/DeepSeek-V3", bytes(dsi_plan_deepseek_v3_json, dsi_plan_deepseek_v3_json_end)},
      {"deepseek-v3-0324", "deepseek-ai/DeepSeek-V3-0324",
       bytes(dsi_plan_deepseek_v3_0324_json, dsi_plan_deepseek_v3_0324_json_end)},
      {"deepseek-r1", "deepseek-ai/DeepSeek-R1", bytes(dsi_plan_deepseek_r1_json, dsi_plan_deepseek_r1_json_end)},
  };
  return models;
}

std::string_view asset_gpus_json() { return bytes(dsi_plan_gpus_json, dsi_plan_gpus_json_end); }

}  // namespace dsi::plan
