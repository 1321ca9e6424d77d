// --gpus parsing and the GPU table.
#include <gtest/gtest.h>

#include "plan/cluster.h"

namespace dsi::plan {
namespace {

const GpuTable& table() { return GpuTable::builtin(); }

std::string error_of(std::string_view spec, int nodes = 1) {
  try {
    parse_cluster(spec, nodes, table());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanGpuTable, KnowsTheGpusUsersAskAbout) {
  for (const char* name : {"H200", "H100-80GB", "H100-PCIe", "H800", "H20", "A100-80GB", "A100-40GB", "A800", "L40S",
                           "L20", "RTX4090", "RTX3090", "A10", "V100"}) {
    const GpuSpec* g = table().find(name);
    ASSERT_NE(g, nullptr) << name;
    EXPECT_GT(g->memory_gib, 0) << name;
    EXPECT_GT(g->hbm_gbs, 0) << name;
    EXPECT_GT(g->bf16_tflops, 0) << name;
    EXPECT_FALSE(g->source.empty()) << name;
  }
  EXPECT_TRUE(table().find("h200")->has_fp8());
  EXPECT_FALSE(table().find("A100-80GB")->has_fp8());
  EXPECT_TRUE(table().find("L40S")->has_fp8());
  EXPECT_EQ(table().find("RTX4090")->link, LinkType::pcie);
  EXPECT_EQ(table().find("H800")->link_gbs, 400);
  EXPECT_FALSE(table().find("V100")->bf16);
  EXPECT_EQ(table().find("H100")->name, "H100-80GB");  // alias
}

TEST(PlanGpuTable, RejectsDuplicateNames) {
  Json j = parse_json(R"({"gpus": [
    {"name": "X", "arch": "a", "memory_gib": 1, "hbm_gbs": 1, "bf16_tflops": 1, "fp8_tflops": 0, "bf16": true,
     "link": "pcie", "link_gbs": 1, "source": "s"},
    {"name": "Y", "aliases": ["x"], "arch": "a", "memory_gib": 1, "hbm_gbs": 1, "bf16_tflops": 1, "fp8_tflops": 0,
     "bf16": true, "link": "pcie", "link_gbs": 1, "source": "s"}]})",
                      "t");
  EXPECT_THROW(GpuTable::from_json(j, "t"), Error);
}

TEST(PlanCluster, ParsesCountTimesName) {
  Cluster c = parse_cluster("8xH200", 1, table());
  EXPECT_EQ(c.n_gpus(), 8);
  EXPECT_FALSE(c.mixed());
  EXPECT_EQ(c.planned_gpu().name, "H200");
  Cluster two = parse_cluster("8xh100-80gb", 2, table());
  EXPECT_EQ(two.n_gpus(), 16);
  EXPECT_EQ(two.gpus_per_node(), 8);
  EXPECT_EQ(two.planned_gpu().name, "H100-80GB");
  EXPECT_EQ(parse_cluster("2xRTX4090", 1, table()).planned_gpu().memory_gib, 24);
}

TEST(PlanCluster, MixedGpusArePlannedAsTheWeakest) {
  Cluster c = parse_cluster("4xH100-80GB, 4xA100-40GB", 1, table());
  EXPECT_TRUE(c.mixed());
  EXPECT_EQ(c.n_gpus(), 8);
  GpuSpec g = c.planned_gpu();
  EXPECT_EQ(g.memory_gib, 40);
  EXPECT_FALSE(g.has_fp8());
  EXPECT_EQ(g.link, LinkType::pcie);
  EXPECT_EQ(g.hbm_gbs, 1555);
  EXPECT_EQ(g.arch, "mixed");
}

TEST(PlanCluster, MemoryOnlySpecForUnknownGpus) {
  Cluster c = parse_cluster("8x96GB", 1, table());
  GpuSpec g = c.planned_gpu();
  EXPECT_TRUE(g.is_custom());
  EXPECT_EQ(g.memory_gib, 96);
  EXPECT_EQ(g.hbm_gbs, 0);
  EXPECT_EQ(parse_cluster("4x40.5gb", 1, table()).planned_gpu().memory_gib, 40.5);
}

TEST(PlanCluster, BadSpecsAreErrorsNamingThePart) {
  EXPECT_NE(error_of("8xB300X").find("unknown GPU 'B300X'"), std::string::npos);
  EXPECT_NE(error_of("H200").find("not COUNTxNAME"), std::string::npos);
  EXPECT_NE(error_of("0xH200").find("count '0'"), std::string::npos);
  EXPECT_NE(error_of("eightxH200").find("count 'eight'"), std::string::npos);
  EXPECT_NE(error_of("8x").find("not COUNTxNAME"), std::string::npos);
  EXPECT_NE(error_of("8xH200,,8xH200").find("empty entry"), std::string::npos);
  EXPECT_NE(error_of("").find("--gpus is empty"), std::string::npos);
  EXPECT_NE(error_of("8x0GB").find("memory"), std::string::npos);
  EXPECT_NE(error_of("8xH200", 0).find("--nodes 0"), std::string::npos);
  EXPECT_NE(error_of("1024xH200", 128).find("more than 65536 GPUs"), std::string::npos);
}

}  // namespace
}  // namespace dsi::plan
