#include "server/vllm_compat.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mapped_file.h"

namespace dsi::server {

namespace fs = std::filesystem;

int64_t parse_human_int(const std::string& text, const std::string& flag) {
  if (text.empty()) fail("{} is empty (expected a number of tokens such as 8192, 32k or 32K)", flag);
  double scale = 1;
  std::string digits = text;
  switch (text.back()) {
    case 'k': scale = 1e3; break;
    case 'm': scale = 1e6; break;
    case 'g': scale = 1e9; break;
    case 'K': scale = 1024.0; break;
    case 'M': scale = 1024.0 * 1024; break;
    case 'G': scale = 1024.0 * 1024 * 1024; break;
    default: break;
  }
  if (scale != 1) digits.pop_back();
  size_t used = 0;
  double value = 0;
  bool ok = !digits.empty() && (std::isdigit(static_cast<unsigned char>(digits[0])) != 0);
  if (ok) {
    try {
      value = std::stod(digits, &used);
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || used != digits.size())
    fail("{} {}: not a number of tokens (examples: 8192, 32k = 32000, 32K = 32768)", flag, text);
  double total = value * scale;
  if (total != std::floor(total)) fail("{} {}: not a whole number of tokens", flag, text);
  if (total > double(std::numeric_limits<int32_t>::max())) fail("{} {} is out of range", flag, text);
  return int64_t(total);
}

namespace {

double number_in(const Json& j, const char* key, double lo, double hi, double fallback, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) fail("{}: '{}' must be a number", file, key);
  double v = it->get<double>();
  if (!(v >= lo && v <= hi)) fail("{}: '{}' = {} is outside [{}, {}]", file, key, v, lo, hi);
  return v;
}

}  // namespace

RequestDefaults load_generation_config(const std::string& mode, const std::string& model_dir, RequestDefaults d) {
  if (mode == "vllm") return d;
  fs::path file;
  if (mode == "auto") {
    if (model_dir.empty() || !fs::is_regular_file(fs::path(model_dir) / "generation_config.json")) return d;
    file = fs::path(model_dir) / "generation_config.json";
  } else {
    file = fs::path(mode) / "generation_config.json";
    if (!fs::is_directory(mode)) fail("--generation-config {}: not auto, vllm or a folder", mode);
    if (!fs::is_regular_file(file)) fail("--generation-config {}: the folder has no generation_config.json", mode);
  }
  const std::string what = file.string();
  Json j = parse_json(read_text_file(what), what);
  if (!j.is_object()) fail("{}: expected a JSON object", what);
  d.temperature = number_in(j, "temperature", 0, 100, d.temperature, what);
  d.top_p = number_in(j, "top_p", 0, 1, d.top_p, what);
  if (d.top_p == 0) fail("{}: 'top_p' must be above 0", what);
  d.top_k = int(number_in(j, "top_k", -1, std::numeric_limits<int32_t>::max(), d.top_k, what));
  if (d.top_k < 0) d.top_k = 0;
  d.min_p = number_in(j, "min_p", 0, 1, d.min_p, what);
  d.repetition_penalty = number_in(j, "repetition_penalty", 1e-9, kMaxRepetitionPenalty, d.repetition_penalty, what);
  if (j.contains("max_new_tokens") && !j["max_new_tokens"].is_null())
    d.max_tokens = int(number_in(j, "max_new_tokens", 1, std::numeric_limits<int32_t>::max(), 0, what));
  spdlog::info("default sampling from {} (requests override): temperature {}, top_p {}, top_k {}, min_p {}, "
               "repetition_penalty {}{}",
               what, d.temperature, d.top_p, d.top_k, d.min_p, d.repetition_penalty,
               d.max_tokens ? fmt::format(", max_tokens {}", *d.max_tokens) : "");
  return d;
}

void check_quantization(const std::string& q, const ModelConfig& config, const std::string& model) {
  if (q.empty()) return;
  const bool fp8 = config.quantization.has_value();
  if (q == "fp8" && !fp8)
    fail("--quantization fp8: the checkpoint {} is not FP8-quantized, and dsinfer cannot quantize weights while "
         "loading yet; serve an FP8 checkpoint (quantization_config in config.json) or leave --quantization out",
         model);
  if (q == "none" && fp8)
    fail("--quantization none: the checkpoint {} is FP8-quantized (quantization_config in config.json); dsinfer "
         "runs its FP8 weights as stored; leave --quantization out or give fp8",
         model);
  if (q != "fp8" && q != "none") fail("--quantization {} is not supported (fp8, none)", q);
}

}  // namespace dsi::server
