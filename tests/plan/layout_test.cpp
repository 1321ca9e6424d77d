// Layouts: candidates, per-GPU weight shards, activation memory, communication bytes and KV
// capacity, each against the formula of docs/plan.md written out independently.
#include <gtest/gtest.h>

#include "plan/layout.h"
#include "plan/stage.h"
#include "test_models.h"

namespace dsi::plan {
namespace {

using testing::builtin_config;

Cluster cluster(std::string_view spec, int nodes = 1) { return parse_cluster(spec, nodes, GpuTable::builtin()); }

ServingRequest fp8_request() {
  ServingRequest r;
  r.weights = WeightDtype::fp8;
  return r;
}

TEST(PlanLayouts, CandidatesForAnEightGpuMoeNode) {
  std::vector<std::string> names;
  for (const Layout& l : candidate_layouts(builtin_config("deepseek-v3"), 8, 8)) names.push_back(l.name());
  EXPECT_EQ(names, (std::vector<std::string>{"TP8", "PP2 x TP4", "PP4 x TP2", "PP8", "EP8, attention DP8",
                                             "EP8, attention TP2 x DP4", "EP8, attention TP4 x DP2",
                                             "EP8, attention TP8"}));
  EXPECT_EQ(candidate_layouts(builtin_config("deepseek-v3"), 1, 1).size(), 1u);
  // Two nodes add EP over each node's stage of a two-stage pipeline.
  bool pp_ep = false;
  for (const Layout& l : candidate_layouts(builtin_config("deepseek-v3"), 16, 8))
    pp_ep |= l.pp == 2 && l.ep == 8 && l.dp == 8;
  EXPECT_TRUE(pp_ep);
}

TEST(PlanLayouts, ProblemsNameTheConflictingField) {
  const ModelConfig& lite = builtin_config("deepseek-v2-lite");
  EXPECT_NE(layout_problem(lite, {1, 32, 1, 1})->find("num_attention_heads = 16"), std::string::npos);
  EXPECT_NE(layout_problem(lite, {32, 1, 1, 1})->find("27 layers"), std::string::npos);
  EXPECT_NE(layout_problem(lite, {1, 1, 128, 128})->find("64 routed experts"), std::string::npos);
  EXPECT_FALSE(layout_problem(lite, {1, 16, 1, 1}));
}

TEST(PlanStages, SplitLayersEvenlyFrontLoaded) {
  auto s = stage_ranges(61, 4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].n_layers(), 16);
  EXPECT_EQ(s[1].n_layers(), 15);
  EXPECT_EQ(s[3].end_layer, 61);
  EXPECT_TRUE(s[0].first_stage && !s[0].last_stage);
  EXPECT_TRUE(s[3].last_stage && !s[3].first_stage);
}

TEST(PlanShards, ExpertParallelAttentionDataParallel) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  const WeightInventory inv = WeightInventory::from_config(c);
  const int64_t main = weight_bytes(inv, WeightDtype::fp8, QuantBlock::of(c)).main;
  const int64_t routed = int64_t(58) * 256 * 3 * (7168 * 2048 + 4 * 56 * 16);
  // Everything but the routed experts on every GPU; the experts spread whole over 8 GPUs.
  LayoutEstimate e = estimate_layout(c, inv, {1, 1, 8, 8}, cluster("8xH200"), fp8_request(), Calibration{});
  EXPECT_EQ(e.weight_bytes_per_gpu, main - routed + routed / 8);
  // Pure TP splits nearly everything: more than an eighth, less than the EP/DP shard.
  LayoutEstimate tp = estimate_layout(c, inv, {1, 8, 1, 1}, cluster("8xH200"), fp8_request(), Calibration{});
  EXPECT_GT(tp.weight_bytes_per_gpu, main / 8);
  EXPECT_LT(tp.weight_bytes_per_gpu, e.weight_bytes_per_gpu);
}

TEST(PlanActivations, OneStepOnOneGpuFollowsTheFormula) {
  const ModelConfig& c = builtin_config("deepseek-v2-lite");
  ServingRequest r;  // 8192 tokens per step, concurrency 64
  const int64_t t = 8192, h = 2048;
  const int64_t residual = 2 * t * h * 2;
  const int64_t attention = t * (16 * (2 * 192 + 2 * 128) + 576) * 2;
  const int64_t dense = 3 * t * 10944 * 2;
  const int64_t moe = (t * 6 * (h + 3 * 1408) + 3 * t * 2 * 1408 + t * 64 * 2) * 2;
  const int64_t logits = 64 * 102400 * 4;
  EXPECT_EQ(activation_bytes(c, Layout{}, r), residual + std::max({attention, dense, moe}) + logits);
}

TEST(PlanComm, TensorParallelAllReducesPerToken) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  const double ar = 2.0 * 7 / 8 * 14336;  // ring all-reduce of a bf16 hidden state over 8 ranks
  CommBytes b = comm_bytes_per_token(c, {1, 8, 1, 1}, 0, 61, true, true, true);
  EXPECT_DOUBLE_EQ(b.tp, (1 + 2 * 61) * ar + 4.0 * 129280 / 8);
  EXPECT_EQ(b.ep, 0);
  EXPECT_EQ(b.n_tp_ops, 1 + 2 * 61 + 1);
}

TEST(PlanComm, ExpertParallelDispatchAndCombine) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  CommBytes fp8 = comm_bytes_per_token(c, {1, 1, 8, 8}, 0, 61, true, true, true);
  EXPECT_EQ(fp8.tp, 0);
  EXPECT_DOUBLE_EQ(fp8.ep, 58 * 8 * (7168 * (1 + 4.0 / 128) + 14336) * 7 / 8);
  CommBytes bf16 = comm_bytes_per_token(c, {1, 1, 8, 8}, 0, 61, true, true, false);
  EXPECT_DOUBLE_EQ(bf16.ep, 58 * 8 * (14336.0 + 14336) * 7 / 8);
  EXPECT_EQ(bf16.n_ep_ops, 2 * 58);
}

TEST(PlanComm, PipelineStageSendsItsHiddenState) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  CommBytes first = comm_bytes_per_token(c, {2, 4, 1, 1}, 0, 31, true, false, true);
  EXPECT_DOUBLE_EQ(first.pp, 14336);
  EXPECT_DOUBLE_EQ(first.tp, (1 + 2 * 31) * 2.0 * 3 / 4 * 14336);
}

TEST(PlanCapacity, KvCacheGetsWhatIsLeftAndDpReplicasAdd) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  const WeightInventory inv = WeightInventory::from_config(c);
  const ServingRequest r = fp8_request();
  for (Layout l : {Layout{1, 8, 1, 1}, Layout{1, 1, 8, 8}, Layout{2, 4, 1, 1}}) {
    LayoutEstimate e = estimate_layout(c, inv, l, cluster("8xH200"), r, Calibration{});
    const int n_layers = l.pp == 2 ? 31 : 61;
    EXPECT_EQ(e.kv_bytes_per_token_per_gpu, int64_t(n_layers) * 576 * 2) << l.name();
    EXPECT_EQ(e.kv_bytes_free, e.usable_bytes - e.bytes_per_gpu);
    EXPECT_EQ(e.usable_bytes, int64_t(139.8 * (1ull << 30) * 0.9));
    EXPECT_EQ(e.max_concurrent_seqs, e.kv_bytes_free / (32768 * e.kv_bytes_per_token_per_gpu) * l.dp) << l.name();
    EXPECT_TRUE(e.fits) << l.name();
    EXPECT_GT(e.decode_tokens_per_s_total, e.decode_tokens_per_s_single) << l.name();
  }
}

TEST(PlanCapacity, V3Fp8DoesNotFitEightH100) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  const WeightInventory inv = WeightInventory::from_config(c);
  for (const Layout& l : candidate_layouts(c, 8, 8)) {
    LayoutEstimate e = estimate_layout(c, inv, l, cluster("8xH100-80GB"), fp8_request(), Calibration{});
    EXPECT_FALSE(e.fits) << l.name();
    EXPECT_EQ(e.max_concurrent_seqs, 0) << l.name();
  }
}

}  // namespace
}  // namespace dsi::plan
