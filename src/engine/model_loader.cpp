#include "engine/model_loader.h"

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"

extern "C" const unsigned char dsinfer_default_config[];
extern "C" const unsigned char dsinfer_default_config_end[];

namespace dsi {

namespace fs = std::filesystem;

ModelConfig embedded_default_config() {
  std::string_view text(reinterpret_cast<const char*>(dsinfer_default_config),
                        size_t(dsinfer_default_config_end - dsinfer_default_config));
  return ModelConfig::from_json(parse_json(text, "embedded default config"), "embedded default config");
}

LoadedModel load_model(const ModelSource& src) {
  auto start = std::chrono::steady_clock::now();
  if (src.load_format != "auto" && src.load_format != "safetensors" && src.load_format != "dummy")
    fail("--load-format {} is not supported (auto, safetensors, dummy)", src.load_format);
  LoadedModel m;
  if (src.path.empty()) {
    if (src.load_format == "safetensors") fail("--load-format safetensors needs --model DIR");
    m.config = embedded_default_config();
    m.name = "dsinfer-default";
    m.weights = make_dummy_weights(m.config, src.seed);
  } else {
    fs::path dir(src.path);
    if (!fs::is_directory(dir)) fail("--model {}: no such folder", src.path);
    if (!fs::exists(dir / "config.json")) fail("--model {}: no config.json in the folder", src.path);
    m.config = ModelConfig::from_file((dir / "config.json").string());
    m.name = fs::absolute(dir).lexically_normal().filename().string();
    if (m.name.empty()) m.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
    if (src.load_format == "dummy") m.weights = make_dummy_weights(m.config, src.seed);
    else m.weights = load_checkpoint_weights(m.config, src.path);
  }
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("model {}: {} layers, hidden {}, {} routed experts, {:.2f} GiB of weights, loaded in {:.2f} s", m.name,
               m.config.n_layers, m.config.hidden_size, m.config.n_routed_experts,
               double(m.weights.n_bytes) / double(1ull << 30), m.load_seconds);
  return m;
}

}  // namespace dsi
