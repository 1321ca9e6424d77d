// Parameter counts, weight bytes and KV bytes of the published configs, against numbers
// computed independently from the config values (and, where published, the model cards).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "plan/assets.h"
#include "plan/inventory.h"
#include "plan/model_size.h"
#include "test_models.h"

namespace dsi::plan {
namespace {

using testing::builtin_config;

ParamCounts params_of(const std::string& name) {
  const ModelConfig& c = builtin_config(name);
  return count_params(c, WeightInventory::from_config(c));
}

double rel(double got, double want) { return std::abs(got - want) / want; }

TEST(PlanParamCount, TotalsWithinHalfAPercentOfThePublishedSizes) {
  // Published: 15.7B (DeepSeek-V2-Lite card), 236B (DeepSeek-V2), 671B (DeepSeek-V3) main model.
  EXPECT_LT(rel(double(params_of("deepseek-v2-lite").total), 15.7e9), 0.005);
  EXPECT_LT(rel(double(params_of("deepseek-v2").total), 236e9), 0.005);
  EXPECT_LT(rel(double(params_of("deepseek-v2.5").total), 236e9), 0.005);
  for (const char* v3 : {"deepseek-v3", "deepseek-v3-0324", "deepseek-r1"})
    EXPECT_LT(rel(double(params_of(v3).total), 671e9), 0.005) << v3;
}

TEST(PlanParamCount, ExactTotalsMatchTheCheckpoints) {
  // DeepSeek-V2-Lite's safetensors hold 15,706,484,224 parameters (sum over its tensors); the
  // Open LLM leaderboard lists DeepSeek-V2 at 235.741B.
  EXPECT_EQ(params_of("deepseek-v2-lite").total, 15706484224);
  EXPECT_EQ(params_of("deepseek-v2").total, 235741434880);
  EXPECT_EQ(params_of("deepseek-v3").total, 671026419200);
}

TEST(PlanParamCount, V3MtpModuleIsCountedSeparately) {
  const ParamCounts p = params_of("deepseek-v3");
  // README_WEIGHTS.md: the MTP module has 11.5B unique parameters besides its copies of the
  // 0.9B embedding and 0.9B head; the hub lists the checkpoint at 685B = 671B + ~14B.
  EXPECT_EQ(p.mtp_unique, 11610068224);
  EXPECT_EQ(p.mtp - p.mtp_unique, 2 * int64_t(129280) * 7168);
  EXPECT_LT(rel(double(p.total + p.mtp), 685e9), 0.005);
  EXPECT_EQ(params_of("deepseek-v2").mtp, 0);
}

TEST(PlanParamCount, ActiveNearThePublishedFigures) {
  // Published: 2.4B, 21B, 37B "activated" parameters. DeepSeek-V3's README_WEIGHTS.md states
  // 36.6B including the 0.9B output head, i.e. without the input embedding lookup: our `active`.
  EXPECT_LT(rel(double(params_of("deepseek-v2-lite").active), 2.4e9), 0.03);
  EXPECT_LT(rel(double(params_of("deepseek-v2").active), 21e9), 0.03);
  EXPECT_LT(rel(double(params_of("deepseek-v3").active), 37e9), 0.03);
  EXPECT_LT(rel(double(params_of("deepseek-v3").active), 36.6e9), 0.001);
}

TEST(PlanParamCount, GroupsFollowTheConfigFormulas) {
  const ParamCounts p = params_of("deepseek-v3");
  const int64_t h = 7168, v = 129280, dense = 3, moe = 58;
  EXPECT_EQ(p.group(ParamGroup::embedding), v * h);
  EXPECT_EQ(p.group(ParamGroup::lm_head), v * h);
  EXPECT_EQ(p.group(ParamGroup::routed_experts), moe * 256 * 3 * h * 2048);
  EXPECT_EQ(p.group(ParamGroup::shared_experts), moe * 3 * h * 2048);
  EXPECT_EQ(p.group(ParamGroup::dense_mlp), dense * 3 * h * 18432);
  EXPECT_EQ(p.group(ParamGroup::router), moe * (256 * h + 256));
  const int64_t attn = h * 1536 + 1536 * 128 * 192 + h * 576 + 512 * 128 * 256 + 128 * 128 * h;
  EXPECT_EQ(p.group(ParamGroup::attention), 61 * attn);
  EXPECT_EQ(p.group(ParamGroup::norms), 61 * (1536 + 512 + 2 * h) + h);
  // V2-Lite: no q_lora_rank, a plain q_proj.
  const ParamCounts lite = params_of("deepseek-v2-lite");
  EXPECT_EQ(lite.group(ParamGroup::attention),
            27 * (2048 * 16 * 192 + 2048 * 576 + 512 * 16 * 256 + 16 * 128 * 2048));
  EXPECT_EQ(lite.group(ParamGroup::router), 26 * 64 * 2048);  // greedy: no correction bias
}

TEST(PlanWeightBytes, Fp8BlockScalesIncludingPartialBlocks) {
  WeightTensor t{"w", ParamGroup::routed_experts, 2048, 7168, 1, true, false, TpSplit::rows};
  EXPECT_EQ(tensor_bytes(t, WeightDtype::fp8, {}), 2048 * 7168 + 4 * 16 * 56);
  EXPECT_EQ(tensor_bytes(t, WeightDtype::bf16, {}), 2 * 2048 * 7168);
  EXPECT_EQ(tensor_bytes(t, WeightDtype::int8, {}), 2048 * 7168 + 2 * 2048);
  EXPECT_EQ(tensor_bytes(t, WeightDtype::int4, {}), 2048 * 7168 / 2 + 2 * 2048 * 56);
  EXPECT_EQ(tensor_bytes(t, 320, 256, WeightDtype::fp8, {}), 320 * 256 + 4 * 3 * 2);  // 320 rows: 3 blocks
  WeightTensor norm{"n", ParamGroup::norms, 7168, 1, 1, false, false, TpSplit::replicated};
  EXPECT_EQ(tensor_bytes(norm, WeightDtype::fp8, {}), 2 * 7168);  // never quantised
  WeightTensor bias{"b", ParamGroup::router, 256, 1, 1, false, true, TpSplit::replicated};
  EXPECT_EQ(tensor_bytes(bias, WeightDtype::int4, {}), 4 * 256);  // float32 always
}

TEST(PlanWeightBytes, V3Fp8CheckpointSize) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  const WeightBytes fp8 = weight_bytes(WeightInventory::from_config(c), WeightDtype::fp8, QuantBlock::of(c));
  // Every quantised Linear: 1 byte/value + float32 per 128x128 block; embeddings, head, norms,
  // router in bf16, correction bias in float32 (computed tensor by tensor outside dsinfer).
  EXPECT_EQ(fp8.main, 673150611808);
  EXPECT_EQ(fp8.mtp, 15424227552);
  const WeightBytes bf16 = weight_bytes(WeightInventory::from_config(c), WeightDtype::bf16, QuantBlock::of(c));
  EXPECT_EQ(bf16.main, 2 * 671026419200 + 58 * 256 * 2);  // the float32 bias has 2 more bytes a value
}

TEST(PlanKvCache, MlaLatentBytesPerTokenAreExact) {
  EXPECT_EQ(kv_bytes_per_token(builtin_config("deepseek-v3"), KvDtype::bf16), 61 * (512 + 64) * 2);
  EXPECT_EQ(kv_bytes_per_token(builtin_config("deepseek-v3"), KvDtype::fp8), 61 * (512 + 64));
  EXPECT_EQ(kv_bytes_per_token(builtin_config("deepseek-v2"), KvDtype::bf16), 60 * 576 * 2);
  EXPECT_EQ(kv_bytes_per_token(builtin_config("deepseek-v2-lite"), KvDtype::bf16), 27 * 576 * 2);
}

TEST(PlanDtypes, ParseAndRejectWithTheValueNamed) {
  EXPECT_EQ(parse_weight_dtype("int4"), WeightDtype::int4);
  EXPECT_EQ(parse_kv_dtype("fp8"), KvDtype::fp8);
  try {
    parse_weight_dtype("fp16");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos);
  }
  EXPECT_THROW(parse_kv_dtype("int8"), Error);
}

TEST(PlanBuiltinModels, BinaryCarriesTheAssetFilesByteForByte) {
  ASSERT_EQ(builtin_models().size(), 6u);
  for (const BuiltinModel& m : builtin_models()) {
    std::ifstream f("../assets/models/" + std::string(m.name) + ".json", std::ios::binary);
    ASSERT_TRUE(f) << m.name;
    std::stringstream s;
    s << f.rdbuf();
    EXPECT_EQ(s.str(), m.config_json) << m.name;
  }
}

}  // namespace
}  // namespace dsi::plan
