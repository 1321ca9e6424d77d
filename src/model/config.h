#pragma once
// config.json of DeepSeek-V2, V2-Lite, V2.5, V3, V3-0324 and R1 as one ModelConfig. Every
// variant difference is a named field here; nothing downstream guesses from sizes. A value
// the engine does not support is an Error naming the field and the value.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace dsi {

enum class TopkMethod { greedy, group_limited_greedy, noaux_tc };
enum class ScoringFunc { softmax, sigmoid };

std::string_view topk_method_name(TopkMethod m);
std::string_view scoring_func_name(ScoringFunc f);

// rope_scaling {type: yarn, ...}; see MATH.md "Rotary embedding".
struct YarnScaling {
  double factor = 1;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32;
  double beta_slow = 1;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
};

// quantization_config {quant_method: fp8, fmt: e4m3, weight_block_size: [128, 128]}.
struct Fp8Quantization {
  int block_rows = 128;
  int block_cols = 128;
};

struct ModelConfig {
  std::string model_type;  // deepseek_v2 | deepseek_v3
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;      // dense MLP width
  int64_t moe_intermediate_size = 0;  // width of one routed expert
  int n_layers = 0;                   // num_hidden_layers (MTP layers not included)
  int n_heads = 0;                    // num_attention_heads
  int64_t max_position_embeddings = 0;

  // MLA
  std::optional<int64_t> q_lora_rank;  // null: plain q_proj (V2-Lite)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;

  // MoE
  int first_k_dense_replace = 0;
  int moe_layer_freq = 1;
  int n_routed_experts = 0;  // 0: every layer is dense
  int n_shared_experts = 0;
  int num_experts_per_tok = 0;
  TopkMethod topk_method = TopkMethod::greedy;
  ScoringFunc scoring_func = ScoringFunc::softmax;
  int n_group = 1;
  int topk_group = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1;

  double rope_theta = 10000;
  std::optional<YarnScaling> rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  int num_nextn_predict_layers = 0;  // MTP modules stored after the last layer
  std::optional<Fp8Quantization> quantization;

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype;  // the checkpoint's declared dtype, informational

  static ModelConfig from_json(const Json& j, std::string_view source);
  static ModelConfig from_file(const std::string& path);  // a config.json path

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Values cached per token and layer: the latent c_kv and the shared rotary key.
  int64_t kv_cache_dim() const { return kv_lora_rank + qk_rope_head_dim; }
  // Whether layer `layer` (0-based, < n_layers) uses the MoE FFN (MATH.md "Layer").
  bool is_moe_layer(int layer) const;
  // The softmax scale of attention, with YaRN's mscale correction (MATH.md "Softmax scale").
  double attention_scale() const;
  Json to_json() const;  // the fields above, in config.json spelling
};

}  // namespace dsi
