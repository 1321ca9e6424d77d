// make_plan end to end: the fits the issue asks for, FP8 on GPUs without FP8, the warnings from
// the seeds, and resolving --model.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "plan/planner.h"
#include "plan/report.h"

namespace dsi::plan {
namespace {

Plan plan(const std::string& model, std::string_view gpus, std::optional<WeightDtype> weights = std::nullopt,
          int nodes = 1) {
  PlanRequest r;
  r.weights = weights;
  return make_plan(load_model_source(model), parse_cluster(gpus, nodes, GpuTable::builtin()), r, Calibration{});
}

bool has_warning(const Plan& p, std::string_view text) {
  for (const std::string& w : p.warnings)
    if (w.find(text) != std::string::npos) return true;
  return false;
}

TEST(PlanEndToEnd, V3Fp8FitsEightH200) {
  Plan p = plan("deepseek-v3", "8xH200");
  EXPECT_EQ(p.gpu_weights, WeightDtype::fp8);
  ASSERT_TRUE(p.recommended);
  const LayoutEstimate& r = p.layouts[*p.recommended];
  EXPECT_TRUE(r.fits);
  EXPECT_GE(r.max_concurrent_seqs, 1);
  EXPECT_FALSE(p.reason.empty());
}

TEST(PlanEndToEnd, V3Fp8DoesNotFitEightH100) {
  Plan p = plan("deepseek-v3", "8xH100-80GB");
  EXPECT_FALSE(p.recommended);
  EXPECT_NE(p.reason.find("nothing fits"), std::string::npos);
}

TEST(PlanEndToEnd, V2LiteBf16FitsOneH100AndV2Bf16FitsEight) {
  Plan lite = plan("deepseek-v2-lite", "1xH100-80GB", WeightDtype::bf16);
  ASSERT_TRUE(lite.recommended);
  EXPECT_EQ(lite.layouts.size(), 1u);
  Plan v2 = plan("deepseek-v2", "8xH100-80GB", WeightDtype::bf16);
  ASSERT_TRUE(v2.recommended);
  bool tp8_fits = false;
  for (const LayoutEstimate& e : v2.layouts) tp8_fits |= e.layout.name() == "TP8" && e.fits;
  EXPECT_TRUE(tp8_fits);
}

TEST(PlanEndToEnd, Fp8OnAmpereIsDequantisedWithAWarning) {
  Plan p = plan("deepseek-r1", "8xA100-80GB", std::nullopt, 2);
  EXPECT_EQ(p.requested_weights, WeightDtype::fp8);
  EXPECT_EQ(p.gpu_weights, WeightDtype::bf16);
  EXPECT_TRUE(has_warning(p, "dequantised to bf16"));
  EXPECT_FALSE(p.recommended);  // 1.34 TB of bf16 weights on 16 x 80 GB
}

TEST(PlanEndToEnd, SeedMistakesGetWarnings) {
  EXPECT_TRUE(has_warning(plan("deepseek-v2-lite", "2xRTX4090"), "tensor parallelism over PCIe"));
  EXPECT_TRUE(has_warning(plan("deepseek-v2-lite", "4xH100-80GB,4xA100-80GB"), "mixed GPU models"));
  EXPECT_FALSE(has_warning(plan("deepseek-v2-lite", "8xH100-80GB"), "PCIe"));
  Plan tight = plan("deepseek-v2", "8xH100-80GB", WeightDtype::bf16);
  EXPECT_TRUE(has_warning(tight, "too little memory left for the KV cache"));
}

TEST(PlanEndToEnd, JsonHasTheDocumentedFields) {
  Json j = plan_json(plan("deepseek-v3", "8xH200"));
  EXPECT_EQ(j["total_params"], 671026419200);
  EXPECT_EQ(j["kv_bytes_per_token"], 61 * 576 * 2);
  EXPECT_EQ(j["weight_bytes"], 673150611808);
  EXPECT_TRUE(j["active_params"].is_number_integer());
  ASSERT_TRUE(j["recommended"].is_string());
  ASSERT_FALSE(j["layouts"].empty());
  for (const char* key : {"tp", "ep", "pp", "bytes_per_gpu", "fits", "max_concurrent_seqs", "comm_bytes_per_token"})
    EXPECT_TRUE(j["layouts"][0].contains(key)) << key;
  EXPECT_TRUE(j["finetune"]["rows"].is_array());
  EXPECT_NE(plan_text(plan("deepseek-v3", "8xH200")).find("Recommended: "), std::string::npos);
}

std::string load_error(const std::string& arg) {
  try {
    load_model_source(arg);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanModelSource, BuiltinsFoldersAndFiles) {
  EXPECT_EQ(load_model_source("DeepSeek-V3").config.n_layers, 61);
  EXPECT_EQ(load_model_source("deepseek-v2.5").config.n_routed_experts, 160);
  EXPECT_EQ(load_model_source("data/tiny-v3-fp8").config.num_nextn_predict_layers, 1);  // folder
  EXPECT_EQ(load_model_source("data/tiny-v2-lite/config.json").config.hidden_size, 192);
}

TEST(PlanModelSource, ErrorsNameTheProblem) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "dsinfer_plan_test";
  fs::create_directories(dir / "empty");
  std::ofstream(dir / "llama.json") << R"({"model_type": "llama", "hidden_size": 4096})";
  std::ofstream(dir / "broken.json") << "{";
  EXPECT_NE(load_error((dir / "llama.json").string()).find("not a DeepSeek-V2/V3 config (model_type = \"llama\""),
            std::string::npos);
  EXPECT_NE(load_error((dir / "broken.json").string()).find("malformed JSON"), std::string::npos);
  EXPECT_NE(load_error((dir / "empty").string()).find("has no config.json"), std::string::npos);
  EXPECT_NE(load_error("deepseek-v9").find("no such file or folder, and not a built-in model"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsi::plan
