// Fine-tuning memory equals the closed forms of docs/plan.md "Fine-tuning", written out here
// from the config values for the published models.
#include <gtest/gtest.h>

#include "plan/finetune.h"
#include "test_models.h"

namespace dsi::plan {
namespace {

using testing::builtin_config;

FinetuneEstimate estimate(const std::string& model, int n_gpus, int per_node, TrainingRequest r = {}) {
  const ModelConfig& c = builtin_config(model);
  const WeightInventory inv = WeightInventory::from_config(c);
  return estimate_finetune(c, inv, count_params(c, inv), n_gpus, per_node, 141.0 * (1ull << 30), WeightDtype::bf16, r,
                           Calibration{});
}

const FinetuneRow& row(const FinetuneEstimate& e, const std::string& name) {
  for (const FinetuneRow& r : e.rows)
    if (r.name == name) return r;
  throw std::runtime_error("no row " + name);
}

TEST(PlanFinetune, ZeroStagesPartitionSixteenBytesPerParameter) {
  const FinetuneEstimate e = estimate("deepseek-v3", 64, 8);
  const double psi = 671026419200.0, n = 64;
  EXPECT_DOUBLE_EQ(row(e, "full, ZeRO-0").model_state_bytes, 16 * psi);
  EXPECT_DOUBLE_EQ(row(e, "full, ZeRO-1").model_state_bytes, 2 * psi + 2 * psi + 12 * psi / n);
  EXPECT_DOUBLE_EQ(row(e, "full, ZeRO-2").model_state_bytes, 2 * psi + 14 * psi / n);
  EXPECT_DOUBLE_EQ(row(e, "full, ZeRO-3").model_state_bytes, 16 * psi / n);
}

TEST(PlanFinetune, OffloadMovesOptimizerAndParametersToTheHost) {
  const FinetuneEstimate e = estimate("deepseek-v2", 16, 8);
  const double psi = 235741434880.0, n = 16, g = 8;
  const FinetuneRow& z2 = row(e, "full, ZeRO-2 + optimizer offload");
  EXPECT_DOUBLE_EQ(z2.model_state_bytes, 2 * psi + 2 * psi / n);
  EXPECT_DOUBLE_EQ(z2.cpu_bytes_per_node, 16 * psi / n * g);
  EXPECT_DOUBLE_EQ(row(e, "full, ZeRO-3 + optimizer offload").model_state_bytes, 4 * psi / n);
  // Largest layer of V2: an MoE layer (attention + 160 experts + 2 shared + router + norms).
  const double attn = 5120.0 * 1536 + 1536 + 1536.0 * 128 * 192 + 5120.0 * 576 + 512 + 512.0 * 128 * 256 +
                      128.0 * 128 * 5120 + 2 * 5120;
  const double moe = 160.0 * 3 * 5120 * 1536 + 3.0 * 5120 * 3072 + 160.0 * 5120;
  EXPECT_DOUBLE_EQ(double(e.largest_layer_params), attn + moe);
  const FinetuneRow& inf = row(e, "full, ZeRO-3 + optimizer & param offload");
  EXPECT_DOUBLE_EQ(inf.model_state_bytes, 2 * psi / n + 4 * (attn + moe));
  EXPECT_DOUBLE_EQ(inf.cpu_bytes_per_node, 16 * psi / n * g + 2 * psi / n * g);
}

TEST(PlanFinetune, LoraParametersOnAttentionAndExpertProjections) {
  const FinetuneEstimate e = estimate("deepseek-v3", 8, 8);
  const int64_t r = 16;
  const int64_t attn = (7168 + 1536) + (1536 + 128 * 192) + (7168 + 576) + (512 + 128 * 256) + (128 * 128 + 7168);
  const int64_t dense = 3 * (7168 + 18432);
  const int64_t moe = 256 * 3 * (7168 + 2048) + 3 * (7168 + 2048);
  EXPECT_EQ(e.lora_params, r * (61 * attn + 3 * dense + 58 * moe));
  const double base = 2.0 * 671026419200 + 58 * 256 * 2;  // bf16 weights, float32 correction bias
  EXPECT_DOUBLE_EQ(row(e, "LoRA r=16, ZeRO-0").model_state_bytes, base + 16.0 * double(e.lora_params));
  EXPECT_DOUBLE_EQ(row(e, "LoRA r=16, ZeRO-3").model_state_bytes, (base + 16.0 * double(e.lora_params)) / 8);
}

TEST(PlanFinetune, ActivationsWithAndWithoutCheckpointing) {
  TrainingRequest r;
  r.seq_len = 4096;
  r.micro_batch = 2;
  const FinetuneEstimate e = estimate("deepseek-v2-lite", 8, 8, r);
  const double tokens = 4096.0 * 2;
  const double attn = 2 * 2048 + 576 + 512 + 16 * (2 * 192 + 2 * 128);
  const double dense = 2 * 2048 + 3 * 10944;
  const double moe = 2 * 2048 + 2 * 64 + 6 * 2048 + 3 * 6 * 1408 + 3 * 2 * 1408;
  const double logits = 4 * tokens * 102400;
  EXPECT_DOUBLE_EQ(e.activations.full, 2 * tokens * (27 * attn + dense + 26 * moe) + logits);
  EXPECT_DOUBLE_EQ(e.activations.checkpointed, 2 * tokens * 2048 * 27 + 2 * tokens * (attn + moe) + logits);
  for (const FinetuneRow& row : e.rows)
    EXPECT_DOUBLE_EQ(row.total_bytes, row.model_state_bytes + e.activations.checkpointed + e.overhead_bytes);
}

TEST(PlanFinetune, FitsOnlyWhenGpuAndHostMemorySuffice) {
  const FinetuneEstimate lite = estimate("deepseek-v2-lite", 8, 8);
  EXPECT_TRUE(row(lite, "full, ZeRO-3").fits);   // 16 x 15.7B / 8 = 31 GB
  EXPECT_FALSE(row(lite, "full, ZeRO-0").fits);  // 251 GB on one GPU
  const FinetuneEstimate v3 = estimate("deepseek-v3", 8, 8);
  EXPECT_FALSE(row(v3, "full, ZeRO-3 + optimizer offload").fits);  // 10.7 TB of optimizer state per node
}

}  // namespace
}  // namespace dsi::plan
