#include "model/config.h"

#include <algorithm>
#include <cmath>

#include "core/mapped_file.h"

namespace dsi {

std::string_view topk_method_name(TopkMethod m) {
  switch (m) {
    case TopkMethod::greedy: return "greedy";
    case TopkMethod::group_limited_greedy: return "group_limited_greedy";
    case TopkMethod::noaux_tc: return "noaux_tc";
  }
  return "?";
}

std::string_view scoring_func_name(ScoringFunc f) { return f == ScoringFunc::softmax ? "softmax" : "sigmoid"; }

namespace {

// A required positive integer.
int64_t positive(const Json& j, const std::string& key, std::string_view what) {
  auto v = json_get<int64_t>(j, key, what);
  if (v <= 0) fail("{}: {} = {} must be positive", what, key, v);
  return v;
}

int64_t non_negative_or(const Json& j, const std::string& key, std::string_view what, int64_t dflt) {
  auto v = json_get_opt<int64_t>(j, key, what).value_or(dflt);
  if (v < 0) fail("{}: {} = {} must not be negative", what, key, v);
  return v;
}

void require_value(const Json& j, const std::string& key, std::string_view what, const Json& supported) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null() && *it != supported)
    fail("{}: {} = {} is not supported (dsinfer supports {})", what, key, it->dump(), supported.dump());
}

YarnScaling parse_yarn(const Json& r, std::string_view what) {
  YarnScaling y;
  y.factor = json_get<double>(r, "factor", what);
  if (!(y.factor >= 1)) fail("{}: rope_scaling.factor = {} must be >= 1", what, y.factor);
  y.original_max_position_embeddings = positive(r, "original_max_position_embeddings", what);
  y.beta_fast = json_get_opt<double>(r, "beta_fast", what).value_or(32);
  y.beta_slow = json_get_opt<double>(r, "beta_slow", what).value_or(1);
  y.mscale = json_get_opt<double>(r, "mscale", what);
  y.mscale_all_dim = json_get_opt<double>(r, "mscale_all_dim", what);
  if (auto af = r.find("attention_factor"); af != r.end() && !af->is_null())
    fail("{}: rope_scaling.attention_factor is not supported (DeepSeek configs derive it from mscale)", what);
  return y;
}

// rope_scaling (config.json) or rope_parameters (configs re-saved by transformers 5).
void parse_rope(const Json& j, std::string_view what, ModelConfig& c) {
  c.rope_theta = json_get_opt<double>(j, "rope_theta", what).value_or(10000);
  const Json* r = nullptr;
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) r = &*it;
  else if (auto p = j.find("rope_parameters"); p != j.end() && !p->is_null()) r = &*p;
  if (!r) return;
  if (!r->is_object()) fail("{}: rope_scaling must be an object, got {}", what, json_type_name(*r));
  if (auto t = json_get_opt<double>(*r, "rope_theta", what)) c.rope_theta = *t;
  std::string type = json_get_opt<std::string>(*r, "type", what)
                         .value_or(json_get_opt<std::string>(*r, "rope_type", what).value_or("default"));
  if (type == "yarn") c.rope_scaling = parse_yarn(*r, std::string(what) + " rope_scaling");
  else if (type != "default")
    fail("{}: rope_scaling.type = \"{}\" is not supported (dsinfer supports yarn or none)", what, type);
  if (!(c.rope_theta > 0)) fail("{}: rope_theta = {} must be positive", what, c.rope_theta);
}

void parse_moe(const Json& j, std::string_view what, ModelConfig& c) {
  bool v3 = c.model_type == "deepseek_v3";
  c.n_routed_experts = int(non_negative_or(j, "n_routed_experts", what, 0));
  c.n_shared_experts = int(non_negative_or(j, "n_shared_experts", what, 0));
  c.first_k_dense_replace = int(non_negative_or(j, "first_k_dense_replace", what, 0));
  c.moe_layer_freq = int(json_get_opt<int64_t>(j, "moe_layer_freq", what).value_or(1));
  if (c.moe_layer_freq <= 0) fail("{}: moe_layer_freq = {} must be positive", what, c.moe_layer_freq);
  if (c.n_routed_experts == 0) return;

  c.moe_intermediate_size = positive(j, "moe_intermediate_size", what);
  c.num_experts_per_tok = int(positive(j, "num_experts_per_tok", what));
  std::string method = json_get_opt<std::string>(j, "topk_method", what).value_or(v3 ? "noaux_tc" : "greedy");
  if (method == "greedy") c.topk_method = TopkMethod::greedy;
  else if (method == "group_limited_greedy") c.topk_method = TopkMethod::group_limited_greedy;
  else if (method == "noaux_tc") c.topk_method = TopkMethod::noaux_tc;
  else fail("{}: topk_method = \"{}\" is not supported (greedy, group_limited_greedy, noaux_tc)", what, method);
  std::string scoring = json_get_opt<std::string>(j, "scoring_func", what).value_or(v3 ? "sigmoid" : "softmax");
  if (scoring == "softmax") c.scoring_func = ScoringFunc::softmax;
  else if (scoring == "sigmoid") c.scoring_func = ScoringFunc::sigmoid;
  else fail("{}: scoring_func = \"{}\" is not supported (softmax, sigmoid)", what, scoring);
  c.n_group = int(json_get_opt<int64_t>(j, "n_group", what).value_or(1));
  c.topk_group = int(json_get_opt<int64_t>(j, "topk_group", what).value_or(1));
  c.norm_topk_prob = json_get_opt<bool>(j, "norm_topk_prob", what).value_or(v3);
  c.routed_scaling_factor = json_get_opt<double>(j, "routed_scaling_factor", what).value_or(1.0);

  if (c.num_experts_per_tok > c.n_routed_experts)
    fail("{}: num_experts_per_tok = {} exceeds n_routed_experts = {}", what, c.num_experts_per_tok,
         c.n_routed_experts);
  if (c.n_group <= 0 || c.n_routed_experts % c.n_group != 0)
    fail("{}: n_group = {} must be positive and divide n_routed_experts = {}", what, c.n_group,
         c.n_routed_experts);
  if (c.topk_group <= 0 || c.topk_group > c.n_group)
    fail("{}: topk_group = {} must be in [1, n_group = {}]", what, c.topk_group, c.n_group);
  int per_group = c.n_routed_experts / c.n_group;
  if (c.topk_method != TopkMethod::greedy && c.num_experts_per_tok > c.topk_group * per_group)
    fail("{}: num_experts_per_tok = {} exceeds the {} experts of topk_group = {} groups", what,
         c.num_experts_per_tok, c.topk_group * per_group, c.topk_group);
  if (c.topk_method == TopkMethod::noaux_tc && per_group < 2)
    fail("{}: topk_method noaux_tc scores a group by its top-2 experts, but n_group = {} leaves {} per group",
         what, c.n_group, per_group);
  if (!(c.routed_scaling_factor > 0))
    fail("{}: routed_scaling_factor = {} must be positive", what, c.routed_scaling_factor);
}

void parse_quantization(const Json& j, std::string_view what, ModelConfig& c) {
  auto it = j.find("quantization_config");
  if (it == j.end() || it->is_null()) return;
  const Json& q = *it;
  std::string qwhat = std::string(what) + " quantization_config";
  if (!q.is_object()) fail("{}: must be an object", qwhat);
  auto method = json_get<std::string>(q, "quant_method", qwhat);
  if (method != "fp8") fail("{}: quant_method = \"{}\" is not supported (dsinfer supports fp8)", qwhat, method);
  require_value(q, "fmt", qwhat, "e4m3");
  require_value(q, "activation_scheme", qwhat, "dynamic");
  Fp8Quantization f;
  if (auto b = q.find("weight_block_size"); b != q.end() && !b->is_null()) {
    if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() || !(*b)[1].is_number_integer() ||
        (*b)[0].get<int64_t>() <= 0 || (*b)[1].get<int64_t>() <= 0 || (*b)[0].get<int64_t>() > 65536 ||
        (*b)[1].get<int64_t>() > 65536)
      fail("{}: weight_block_size = {} must be two positive integers", qwhat, b->dump());
    f.block_rows = (*b)[0].get<int>();
    f.block_cols = (*b)[1].get<int>();
  } else {
    fail("{}: weight_block_size is missing (per-tensor FP8 scales are not supported)", qwhat);
  }
  c.quantization = f;
}

}  // namespace

ModelConfig ModelConfig::from_json(const Json& j, std::string_view what) {
  if (!j.is_object()) fail("{}: expected a JSON object, got {}", what, json_type_name(j));
  ModelConfig c;
  c.model_type = json_get<std::string>(j, "model_type", what);
  if (c.model_type != "deepseek_v2" && c.model_type != "deepseek_v3")
    fail("{}: model_type = \"{}\" is not supported (dsinfer serves deepseek_v2 and deepseek_v3)", what,
         c.model_type);
  require_value(j, "hidden_act", what, "silu");
  require_value(j, "attention_bias", what, false);

  c.vocab_size = positive(j, "vocab_size", what);
  c.hidden_size = positive(j, "hidden_size", what);
  c.intermediate_size = positive(j, "intermediate_size", what);
  c.n_layers = int(positive(j, "num_hidden_layers", what));
  c.n_heads = int(positive(j, "num_attention_heads", what));
  c.max_position_embeddings = json_get_opt<int64_t>(j, "max_position_embeddings", what).value_or(163840);
  if (c.max_position_embeddings <= 0)
    fail("{}: max_position_embeddings = {} must be positive", what, c.max_position_embeddings);

  if (auto q = json_get_opt<int64_t>(j, "q_lora_rank", what)) {
    if (*q <= 0) fail("{}: q_lora_rank = {} must be positive or null", what, *q);
    c.q_lora_rank = *q;
  }
  c.kv_lora_rank = positive(j, "kv_lora_rank", what);
  c.qk_nope_head_dim = positive(j, "qk_nope_head_dim", what);
  c.qk_rope_head_dim = positive(j, "qk_rope_head_dim", what);
  c.v_head_dim = positive(j, "v_head_dim", what);
  if (c.qk_rope_head_dim % 2) fail("{}: qk_rope_head_dim = {} must be even", what, c.qk_rope_head_dim);

  parse_moe(j, what, c);
  parse_rope(j, what, c);
  parse_quantization(j, what, c);

  c.rms_norm_eps = json_get_opt<double>(j, "rms_norm_eps", what).value_or(1e-6);
  if (!(c.rms_norm_eps > 0)) fail("{}: rms_norm_eps = {} must be positive", what, c.rms_norm_eps);
  c.tie_word_embeddings = json_get_opt<bool>(j, "tie_word_embeddings", what).value_or(false);
  c.num_nextn_predict_layers = int(non_negative_or(j, "num_nextn_predict_layers", what, 0));
  c.torch_dtype = json_get_opt<std::string>(j, "torch_dtype", what).value_or("");
  c.bos_token_id = json_get_opt<int64_t>(j, "bos_token_id", what);
  if (auto e = j.find("eos_token_id"); e != j.end() && !e->is_null()) {
    if (e->is_number_integer()) c.eos_token_ids.push_back(e->get<int64_t>());
    else if (e->is_array() && std::all_of(e->begin(), e->end(), [](const Json& x) { return x.is_number_integer(); }))
      for (auto& x : *e) c.eos_token_ids.push_back(x.get<int64_t>());
    else fail("{}: eos_token_id = {} must be an integer or a list of integers", what, e->dump());
  }
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  return ModelConfig::from_json(parse_json(read_text_file(path), path), path);
}

bool ModelConfig::is_moe_layer(int layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

double ModelConfig::attention_scale() const {
  double scale = 1.0 / std::sqrt(double(qk_head_dim()));
  if (rope_scaling && rope_scaling->mscale_all_dim && *rope_scaling->mscale_all_dim != 0 &&
      rope_scaling->factor > 1) {
    double m = 0.1 * *rope_scaling->mscale_all_dim * std::log(rope_scaling->factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

Json ModelConfig::to_json() const {
  Json j = {
      {"model_type", model_type},
      {"architectures", {model_type == "deepseek_v3" ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"}},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"moe_intermediate_size", moe_intermediate_size},
      {"num_hidden_layers", n_layers},
      {"num_attention_heads", n_heads},
      {"num_key_value_heads", n_heads},
      {"max_position_embeddings", max_position_embeddings},
      {"q_lora_rank", q_lora_rank ? Json(*q_lora_rank) : Json(nullptr)},
      {"kv_lora_rank", kv_lora_rank},
      {"qk_nope_head_dim", qk_nope_head_dim},
      {"qk_rope_head_dim", qk_rope_head_dim},
      {"v_head_dim", v_head_dim},
      {"first_k_dense_replace", first_k_dense_replace},
      {"moe_layer_freq", moe_layer_freq},
      {"n_routed_experts", n_routed_experts},
      {"n_shared_experts", n_shared_experts},
      {"num_experts_per_tok", num_experts_per_tok},
      {"topk_method", topk_method_name(topk_method)},
      {"scoring_func", scoring_func_name(scoring_func)},
      {"n_group", n_group},
      {"topk_group", topk_group},
      {"norm_topk_prob", norm_topk_prob},
      {"routed_scaling_factor", routed_scaling_factor},
      {"rope_theta", rope_theta},
      {"rms_norm_eps", rms_norm_eps},
      {"tie_word_embeddings", tie_word_embeddings},
      {"num_nextn_predict_layers", num_nextn_predict_layers},
      {"hidden_act", "silu"},
      {"attention_bias", false},
  };
  if (rope_scaling) {
    Json r = {{"type", "yarn"},
              {"factor", rope_scaling->factor},
              {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings},
              {"beta_fast", rope_scaling->beta_fast},
              {"beta_slow", rope_scaling->beta_slow}};
    if (rope_scaling->mscale) r["mscale"] = *rope_scaling->mscale;
    if (rope_scaling->mscale_all_dim) r["mscale_all_dim"] = *rope_scaling->mscale_all_dim;
    j["rope_scaling"] = r;
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (quantization)
    j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                {"weight_block_size", {quantization->block_rows, quantization->block_cols}}};
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty()) j["eos_token_id"] = eos_token_ids;
  if (!torch_dtype.empty()) j["torch_dtype"] = torch_dtype;
  return j;
}

}  // namespace dsi
