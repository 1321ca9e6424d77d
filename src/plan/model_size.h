#pragma once
// Parameter counts, weight bytes per storage dtype and KV-cache bytes per token of a DeepSeek
// model, exact from config.json (docs/plan.md states every formula).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "model/config.h"
#include "plan/inventory.h"

namespace dsi::plan {

// How quantizable Linear weights are stored (everything else stays bf16, see WeightTensor):
//   bf16: 2 bytes a value
//   fp8:  1 byte a value + one float32 scale per block (config's weight_block_size, 128x128)
//   int8: 1 byte a value + one bf16 scale per output row
//   int4: 1/2 byte a value + one bf16 scale per output row and group of 128 inputs
enum class WeightDtype { bf16, fp8, int8, int4 };
enum class KvDtype { bf16, fp8 };
inline constexpr int64_t int4_group_size = 128;

std::string_view weight_dtype_name(WeightDtype d);
std::string_view kv_dtype_name(KvDtype d);
WeightDtype parse_weight_dtype(std::string_view s);  // Error naming the value
KvDtype parse_kv_dtype(std::string_view s);

struct QuantBlock {
  int64_t rows = 128;
  int64_t cols = 128;
  static QuantBlock of(const ModelConfig& c);  // the config's weight_block_size, else 128x128
};

// Bytes of one [rows, cols] tensor (or shard of one) stored as `dtype`.
int64_t tensor_bytes(const WeightTensor& t, int64_t rows, int64_t cols, WeightDtype dtype, QuantBlock block);
// All copies of a whole tensor.
int64_t tensor_bytes(const WeightTensor& t, WeightDtype dtype, QuantBlock block);

struct ParamCounts {
  std::array<int64_t, n_param_groups> by_group{};  // main model, MTP excluded
  int64_t total = 0;                 // main model, MTP excluded
  int64_t active = 0;                // used per token: all but the routed experts not chosen and the
                                     // input embedding (a table lookup); lm_head included
  int64_t active_with_embedding = 0;
  int64_t mtp = 0;                   // MTP modules as stored, with their embedding and head copies
  int64_t mtp_unique = 0;            // MTP modules without those copies
  int64_t group(ParamGroup g) const { return by_group[static_cast<size_t>(g)]; }
};

ParamCounts count_params(const ModelConfig& c, const WeightInventory& inv);

struct WeightBytes {
  int64_t main = 0;  // embedding, decoder layers, final norm, lm_head
  int64_t mtp = 0;   // MTP modules
};
WeightBytes weight_bytes(const WeightInventory& inv, WeightDtype dtype, QuantBlock block);

// MLA caches per token and layer the latent c_kv and the shared rotary key:
//   n_layers * (kv_lora_rank + qk_rope_head_dim) * bytes(kv dtype)
int64_t kv_bytes_per_token(const ModelConfig& c, KvDtype dtype, int n_layers);
inline int64_t kv_bytes_per_token(const ModelConfig& c, KvDtype dtype) {
  return kv_bytes_per_token(c, dtype, c.n_layers);
}

}  // namespace dsi::plan
