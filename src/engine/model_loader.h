#pragma once
// Where a model comes from: a Hugging Face checkpoint folder, its config.json with random
// weights (--load-format dummy), or, with no --model, the small DeepSeek-V3-shaped default
// built into the binary (random weights; it needs no download).
#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/weights.h"

namespace dsi {

struct ModelSource {
  std::string path;                  // checkpoint folder; empty = the embedded default
  std::string load_format = "auto";  // auto | safetensors | dummy
  uint64_t seed = 0;                 // dummy weights
};

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
  std::string name;  // folder name, or "dsinfer-default"
  double load_seconds = 0;
};

LoadedModel load_model(const ModelSource& source);

// The embedded default's config.json.
ModelConfig embedded_default_config();

}  // namespace dsi
