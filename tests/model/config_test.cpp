#include "model/config.h"

#include <gtest/gtest.h>

#include "../common/test_paths.h"
#include "core/mapped_file.h"

namespace dsi {
namespace {

ModelConfig parse(const Json& j) { return ModelConfig::from_json(j, "config.json"); }

Json v3_config() { return parse_json(read_text_file(test::data_path("tiny-v3-fp8/config.json")), "fixture"); }

// The error message of parsing j, or "" when it parses.
std::string error_of(const Json& j) {
  try {
    parse(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ParsesTheV2LiteFixture) {
  auto c = ModelConfig::from_file(test::data_path("tiny-v2-lite/config.json"));
  EXPECT_EQ(c.model_type, "deepseek_v2");
  EXPECT_FALSE(c.q_lora_rank.has_value());
  EXPECT_EQ(c.kv_lora_rank, 64);
  EXPECT_EQ(c.topk_method, TopkMethod::greedy);
  EXPECT_EQ(c.scoring_func, ScoringFunc::softmax);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_FALSE(c.norm_topk_prob);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(*c.rope_scaling->mscale_all_dim, 0.707);
  EXPECT_FALSE(c.quantization.has_value());
  EXPECT_FALSE(c.is_moe_layer(0));
  EXPECT_TRUE(c.is_moe_layer(1));
  EXPECT_EQ(c.kv_cache_dim(), 64 + 16);
}

TEST(ModelConfig, ParsesTheV3Fixture) {
  auto c = parse(v3_config());
  EXPECT_EQ(*c.q_lora_rank, 96);
  EXPECT_EQ(c.topk_method, TopkMethod::noaux_tc);
  EXPECT_EQ(c.scoring_func, ScoringFunc::sigmoid);
  EXPECT_EQ(c.n_group, 4);
  EXPECT_EQ(c.topk_group, 2);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  ASSERT_TRUE(c.quantization.has_value());
  EXPECT_EQ(c.quantization->block_rows, 128);
  EXPECT_EQ(c.quantization->block_cols, 128);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{1});
}

TEST(ModelConfig, RoundTripsThroughJson) {
  auto c = parse(v3_config());
  auto again = parse(c.to_json());
  EXPECT_EQ(again.to_json(), c.to_json());
}

TEST(ModelConfig, SoftmaxScaleHasTheYarnCorrection) {
  auto c = ModelConfig::from_file(test::data_path("tiny-v2-lite/config.json"));
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.attention_scale(), m * m / std::sqrt(48.0), 1e-12);
  c.rope_scaling.reset();
  EXPECT_NEAR(c.attention_scale(), 1 / std::sqrt(48.0), 1e-12);
}

struct BadValue {
  const char* field;
  Json value;
  const char* expected_in_message;
};

TEST(ModelConfig, UnsupportedValuesNameFieldAndValue) {
  const BadValue cases[] = {
      {"model_type", "llama", "model_type = \"llama\""},
      {"hidden_act", "gelu", "hidden_act = \"gelu\""},
      {"topk_method", "random", "topk_method = \"random\""},
      {"scoring_func", "relu", "scoring_func = \"relu\""},
      {"n_group", 3, "n_group = 3"},
      {"topk_group", 5, "topk_group = 5"},
      {"num_experts_per_tok", 17, "num_experts_per_tok = 17"},
      {"qk_rope_head_dim", 15, "qk_rope_head_dim = 15"},
      {"hidden_size", -4, "hidden_size = -4"},
      {"hidden_size", "256", "'hidden_size' has type string"},
      {"rope_scaling", Json{{"type", "linear"}, {"factor", 2}}, "rope_scaling.type = \"linear\""},
      {"quantization_config", Json{{"quant_method", "awq"}}, "quant_method = \"awq\""},
      {"quantization_config", Json{{"quant_method", "fp8"}, {"weight_block_size", {128}}}, "weight_block_size"},
      {"quantization_config", Json{{"quant_method", "fp8"}, {"fmt", "e5m2"}, {"weight_block_size", {128, 128}}},
       "fmt = \"e5m2\""},
      {"attention_bias", true, "attention_bias = true"},
  };
  for (const auto& bad : cases) {
    Json j = v3_config();
    j[bad.field] = bad.value;
    std::string msg = error_of(j);
    EXPECT_NE(msg.find(bad.expected_in_message), std::string::npos)
        << bad.field << " -> message was: '" << msg << "'";
  }
}

TEST(ModelConfig, MissingRequiredFieldIsNamed) {
  Json j = v3_config();
  j.erase("kv_lora_rank");
  EXPECT_NE(error_of(j).find("missing field 'kv_lora_rank'"), std::string::npos);
}

TEST(ModelConfig, MalformedJsonIsAnError) {
  try {
    parse_json("{\"hidden_size\": 12,", "config.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: malformed JSON"), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, MoeLayerFrequency) {
  Json j = v3_config();
  j["moe_layer_freq"] = 2;
  j["first_k_dense_replace"] = 1;
  auto c = parse(j);
  EXPECT_FALSE(c.is_moe_layer(0));
  EXPECT_FALSE(c.is_moe_layer(1));
  EXPECT_TRUE(c.is_moe_layer(2));
}

}  // namespace
}  // namespace dsi
