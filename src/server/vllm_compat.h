#pragma once
// What `dsinfer serve` takes from vLLM's command line beyond flags of the same meaning:
// vLLM's human-readable integers (--max-model-len 32k), the checkpoint's generation_config.json
// as request defaults (--generation-config), and --quantization checked against the checkpoint.
// Each problem is an Error naming the flag. See docs/serving.md, "Coming from vLLM".
#include <cstdint>
#include <string>

#include "model/config.h"
#include "server/openai_request.h"

namespace dsi::server {

// vLLM's spelling of sizes: "8192", "32k" (= 32000) and "32K" (= 32768); m/M and g/G alike,
// lower case decimal, upper case binary; a decimal fraction ("25.6k") when it lands on a whole number.
int64_t parse_human_int(const std::string& text, const std::string& flag);

// --generation-config: "auto" reads generation_config.json from the model folder (none there,
// or no folder: the built-in defaults), "vllm" keeps the built-in defaults, anything else is a
// folder that must hold generation_config.json. Its temperature, top_p, top_k, min_p,
// repetition_penalty and max_new_tokens become the defaults of requests that set none; the
// result is logged.
RequestDefaults load_generation_config(const std::string& mode, const std::string& model_dir, RequestDefaults base);

// --quantization: "" (unset) takes the checkpoint as it is; "fp8" needs an FP8 checkpoint
// (dsinfer has no online quantization yet), "none" a checkpoint that is not quantized.
void check_quantization(const std::string& quantization, const ModelConfig& config, const std::string& model);

}  // namespace dsi::server
