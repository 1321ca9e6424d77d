// The weight table derived from config.json: which tensors exist, their shapes and how they
// split, per the hub checkpoints' layout (MATH.md).
#include <gtest/gtest.h>

#include <algorithm>

#include "model/weight_map.h"
#include "plan/inventory.h"
#include "test_models.h"

namespace dsi::plan {
namespace {

using testing::builtin_config;

const WeightTensor& find(const std::vector<WeightTensor>& ts, std::string_view name) {
  auto it = std::find_if(ts.begin(), ts.end(), [&](const WeightTensor& t) { return t.name == name; });
  if (it == ts.end()) throw std::runtime_error("no tensor " + std::string(name));
  return *it;
}

bool has(const std::vector<WeightTensor>& ts, std::string_view name) {
  return std::any_of(ts.begin(), ts.end(), [&](const WeightTensor& t) { return t.name == name; });
}

TEST(PlanInventory, V2LiteFirstLayerDenseThenMoeWithPlainQProj) {
  const WeightInventory inv = WeightInventory::from_config(builtin_config("deepseek-v2-lite"));
  ASSERT_EQ(inv.layers.size(), 27u);
  EXPECT_FALSE(inv.layers[0].moe);
  EXPECT_TRUE(inv.layers[1].moe);
  const auto& l0 = inv.layers[0].tensors;
  EXPECT_TRUE(has(l0, "self_attn.q_proj.weight"));
  EXPECT_FALSE(has(l0, "self_attn.q_a_proj.weight"));
  EXPECT_EQ(find(l0, "mlp.gate_proj.weight").rows, 10944);
  const auto& l1 = inv.layers[1].tensors;
  const WeightTensor& up = find(l1, "mlp.experts.{e}.up_proj.weight");
  EXPECT_EQ(up.n_copies, 64);
  EXPECT_EQ(up.rows, 1408);
  EXPECT_EQ(up.cols, 2048);
  EXPECT_EQ(find(l1, "mlp.shared_experts.down_proj.weight").cols, 2 * 1408);
  EXPECT_FALSE(has(l1, "mlp.gate.e_score_correction_bias"));
  EXPECT_TRUE(inv.mtp.empty());
}

TEST(PlanInventory, V3QuantisedLinearsAndFloat32Bias) {
  const WeightInventory inv = WeightInventory::from_config(builtin_config("deepseek-v3"));
  ASSERT_EQ(inv.layers.size(), 61u);
  EXPECT_FALSE(inv.layers[2].moe);
  EXPECT_TRUE(inv.layers[3].moe);
  const auto& l = inv.layers[3].tensors;
  EXPECT_TRUE(find(l, "self_attn.q_b_proj.weight").quantizable);
  EXPECT_EQ(find(l, "self_attn.q_b_proj.weight").split, TpSplit::rows);
  EXPECT_EQ(find(l, "self_attn.o_proj.weight").split, TpSplit::cols);
  EXPECT_EQ(find(l, "self_attn.kv_a_proj_with_mqa.weight").rows, 576);
  EXPECT_FALSE(find(l, "mlp.gate.weight").quantizable);
  EXPECT_TRUE(find(l, "mlp.gate.e_score_correction_bias").fp32);
  EXPECT_FALSE(inv.embedding[0].quantizable);
  EXPECT_EQ(inv.head.size(), 2u);  // final norm + lm_head (not tied)
}

TEST(PlanInventory, V3MtpModuleHasItsProjectionAndCopies) {
  const WeightInventory inv = WeightInventory::from_config(builtin_config("deepseek-v3"));
  ASSERT_EQ(inv.mtp.size(), 1u);
  EXPECT_TRUE(inv.mtp[0].moe);
  const WeightTensor& eh = find(inv.mtp[0].tensors, "eh_proj.weight");
  EXPECT_EQ(eh.rows, 7168);
  EXPECT_EQ(eh.cols, 2 * 7168);
  EXPECT_FALSE(eh.quantizable);
  EXPECT_TRUE(has(inv.mtp[0].tensors, "shared_head.head.weight"));
  EXPECT_TRUE(has(inv.mtp[0].tensors, "embed_tokens.weight"));
}

// The inventory is the model's weight table (model/weight_map.h) regrouped: the same tensors
// and parameters, MTP modules included, routed experts folded n_routed_experts to one.
TEST(PlanInventory, IsTheModelsWeightTable) {
  for (const char* name : {"deepseek-v2-lite", "deepseek-v2", "deepseek-v3"}) {
    SCOPED_TRACE(name);
    const ModelConfig& c = builtin_config(name);
    auto numel = [](const WeightSpec& s) { return s.shape.size() == 2 ? s.shape[0] * s.shape[1] : s.shape[0]; };
    int64_t main = 0, mtp = 0;
    size_t n_main = 0;
    for (const WeightSpec& s : weight_table(c)) main += numel(s), ++n_main;
    for (const WeightSpec& s : mtp_weight_table(c)) mtp += numel(s);
    const WeightInventory inv = WeightInventory::from_config(c);
    int64_t inv_main = 0, inv_mtp = 0;
    size_t n_inv = 0;
    auto add = [&](const std::vector<WeightTensor>& ts, int64_t& sum) {
      for (const WeightTensor& t : ts) sum += t.n_params(), n_inv += size_t(t.n_copies);
    };
    add(inv.embedding, inv_main);
    for (const LayerInventory& l : inv.layers) add(l.tensors, inv_main);
    add(inv.head, inv_main);
    EXPECT_EQ(n_inv, n_main);
    for (const LayerInventory& m : inv.mtp) add(m.tensors, inv_mtp);
    EXPECT_EQ(inv_main, main);
    EXPECT_EQ(inv_mtp, mtp);
  }
  // Split rules come from the table's ShardDim: a routed expert's down_proj is row-parallel
  // (cols), the vocab-parallel lm_head rows, the latent projection replicated.
  const WeightInventory inv = WeightInventory::from_config(builtin_config("deepseek-v3"));
  EXPECT_EQ(find(inv.layers[3].tensors, "mlp.experts.{e}.down_proj.weight").split, TpSplit::cols);
  EXPECT_EQ(find(inv.layers[3].tensors, "mlp.experts.{e}.down_proj.weight").group, ParamGroup::routed_experts);
  EXPECT_EQ(find(inv.layers[3].tensors, "mlp.shared_experts.up_proj.weight").group, ParamGroup::shared_experts);
  EXPECT_EQ(find(inv.head, "lm_head.weight").split, TpSplit::rows);
  EXPECT_FALSE(find(inv.head, "lm_head.weight").quantizable);
  EXPECT_EQ(find(inv.layers[0].tensors, "self_attn.kv_a_proj_with_mqa.weight").split, TpSplit::replicated);
  EXPECT_EQ(find(inv.layers[0].tensors, "mlp.down_proj.weight").group, ParamGroup::dense_mlp);
}

}  // namespace
}  // namespace dsi::plan
