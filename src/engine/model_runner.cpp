#include "engine/model_runner.h"

#include <cctype>
#include <cmath>

#include "core/error.h"
#include "core/host_memory.h"
#include "core/log.h"

namespace dsi {

namespace {

int64_t kv_row_bytes(const ModelConfig& c) { return c.kv_cache_dim() * int64_t(sizeof(float)); }

int64_t block_count(const ModelConfig& c, const RunnerOptions& o, const Backend& backend) {
  if (o.block_size <= 0 || o.block_size > 4096) fail("--block-size {} must be in [1, 4096]", o.block_size);
  // Checked before the block bookkeeping is sized by it: a cache in host memory cannot be
  // larger than the machine's memory.
  const int64_t total = host_memory().total_bytes;
  if (backend.name() == "cpu" && total > 0 && o.kv_cache_bytes > total)
    fail("--kv-cache-memory {} bytes is more than this machine has: {}", o.kv_cache_bytes, host_memory_summary());
  const int64_t per_block = int64_t(c.n_layers) * o.block_size * kv_row_bytes(c);
  int64_t n = o.kv_cache_bytes / per_block;
  if (o.max_kv_blocks > 0) n = std::min(n, o.max_kv_blocks);
  if (n < 1)
    fail("--kv-cache-memory {} bytes holds no block of {} tokens ({} bytes per block for {} layers)", o.kv_cache_bytes,
         o.block_size, per_block, c.n_layers);
  return n;
}

}  // namespace

ModelRunner::ModelRunner(ModelConfig config, ModelWeights weights, std::unique_ptr<Backend> backend,
                         const RunnerOptions& options)
    : backend_(std::move(backend)),
      blocks_(block_count(config, options, *backend_), options.block_size, options.prefix_caching) {
  cache_.n_layers = config.n_layers;
  cache_.n_blocks = blocks_.n_blocks();
  cache_.block_size = options.block_size;
  const int64_t n_rows = cache_.n_layers * cache_.n_blocks * cache_.block_size;
  // A size beyond the machine must be a startup error that says so, not std::bad_alloc.
  const int64_t n_bytes = n_rows * kv_row_bytes(config);
  try {
    cache_memory_ = backend_->alloc(DType::f32, n_rows, config.kv_cache_dim());
  } catch (const std::bad_alloc&) {
    fail("--kv-cache-memory: allocating {} bytes ({} blocks) on {} failed; host memory: {}", n_bytes, cache_.n_blocks,
         backend_->name(), host_memory_summary());
  }
  cache_.pool = cache_memory_.t;
  spdlog::info("KV cache: {} blocks of {} tokens ({} tokens, {:.1f} MiB, {} bytes per token)", cache_.n_blocks,
               cache_.block_size, cache_.n_blocks * cache_.block_size,
               double(cache_.pool.numel() * 4) / double(1 << 20), kv_row_bytes(config) * config.n_layers);
  model_ = std::make_unique<DeepSeekModel>(std::move(config), std::move(weights), *backend_);
}

int64_t ModelRunner::kv_bytes_per_token() const { return kv_row_bytes(config()) * config().n_layers; }

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string number = text.substr(0, i), unit = text.substr(i);
  double v = 0;
  try {
    size_t used = 0;
    v = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    fail("{} '{}' is not a size (examples: 1GiB, 512MiB, 2G, 1000000)", what, text);
  }
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "KB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else fail("{} '{}': unknown unit '{}' (B, KiB, MiB, GiB, TiB, KB, MB, GB)", what, text, unit);
  double bytes = v * mult;
  if (!(bytes >= 1) || bytes > 9e18) fail("{} '{}' is out of range", what, text);
  return int64_t(bytes);
}

}  // namespace dsi
