// `dsinfer topo` through the real loader (dlopen, dlsym) on a fake NVML library built by the
// tests (fake_nvml.cpp): GPUs, the link matrix, placement and the warnings for mixed models,
// PCIe-only links and a TP group across sockets; and no library at all.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fmt/format.h>

#include <fstream>

#include "core/error.h"
#include "topo/group_check.h"
#include "topo/nvml.h"

namespace dsi::topo {
namespace {

Topology with_config(const std::string& json) {
  const std::string path = testing::TempDir() + "fake_nvml.json";
  std::ofstream(path) << json;
  setenv("FAKE_NVML_CONFIG", path.c_str(), 1);
  return read_topology(FAKE_NVML_PATH);
}

bool has(const std::vector<std::string>& warnings, const std::string& words) {
  for (const auto& w : warnings)
    if (w.find(words) != std::string::npos) return true;
  return false;
}

// Two H100s and two A100s on PCIe only, one pair per socket.
const char* kMixedPcie = R"({"driver": "550.54.15", "nvml": "12.550.54.15", "cuda": 12040, "gpus": [
  {"name": "NVIDIA H100 PCIe", "memory_gib": 80, "cc": [9, 0], "sm_mhz": 1755, "mem_mhz": 1593, "bus": "00000000:18:00.0", "numa": 0, "cpus": [0, 1, 2, 3]},
  {"name": "NVIDIA H100 PCIe", "memory_gib": 80, "cc": [9, 0], "sm_mhz": 1755, "mem_mhz": 1593, "bus": "00000000:3B:00.0", "numa": 0, "cpus": [0, 1, 2, 3]},
  {"name": "NVIDIA A100-PCIE-40GB", "memory_gib": 40, "cc": [8, 0], "sm_mhz": 1410, "mem_mhz": 1215, "bus": "00000000:86:00.0", "numa": 1, "cpus": [4, 5, 6, 7]},
  {"name": "NVIDIA A100-PCIE-40GB", "memory_gib": 40, "cc": [8, 0], "sm_mhz": 1410, "mem_mhz": 1215, "bus": "00000000:AF:00.0", "numa": 1, "cpus": [4, 5, 6, 7]}],
 "links": [["X", "PIX", "SYS", "SYS"], ["PIX", "X", "SYS", "SYS"], ["SYS", "SYS", "X", "PHB"], ["SYS", "SYS", "PHB", "X"]]})";

TEST(Topo, MixedModelsOverPcie) {
  Topology t = with_config(kMixedPcie);
  ASSERT_TRUE(t.available) << t.reason;
  EXPECT_EQ(t.driver_version, "550.54.15");
  EXPECT_EQ(t.cuda_driver_version, 12040);
  ASSERT_EQ(t.gpus.size(), 4u);
  EXPECT_EQ(t.gpus[0].name, "NVIDIA H100 PCIe");
  EXPECT_EQ(t.gpus[0].memory_total_bytes, int64_t(80) << 30);
  EXPECT_TRUE(t.gpus[0].fp8());
  EXPECT_FALSE(t.gpus[2].fp8());
  EXPECT_EQ(t.gpus[2].max_sm_clock_mhz, 1410);
  EXPECT_EQ(t.gpus[3].numa_node, 1);
  EXPECT_EQ(cpu_list(t.gpus[2].cpu_affinity), "4-7");
  EXPECT_EQ(link_name(t.links[0][1]), "PIX");
  EXPECT_EQ(link_name(t.links[2][3]), "PHB");
  EXPECT_EQ(link_name(t.links[1][2]), "SYS");
  EXPECT_EQ(link_name(t.links[3][3]), "X");

  // One TP group of all four: every warning.
  Placement all = place_ranks(t, 4, 4);
  auto w = topology_warnings(t, all);
  EXPECT_TRUE(has(w, "mixed GPU models (NVIDIA A100-PCIE-40GB, NVIDIA H100 PCIe)")) << w.size();
  EXPECT_TRUE(has(w, "without NVLink between them (worst link SYS)"));
  EXPECT_TRUE(has(w, "spans CPU sockets"));
  EXPECT_TRUE(has(w, "GPU2 (NVIDIA A100-PCIE-40GB, compute capability 8.0) has no FP8"));
  // TP 2 inside EP 4: each TP group within a socket, still over PCIe, never across sockets.
  Placement two = place_ranks(t, 2, 4);
  EXPECT_EQ(two.rank_gpu, (std::vector<int>{0, 1, 2, 3}));
  w = topology_warnings(t, two);
  EXPECT_TRUE(has(w, "TP group 0 (GPU0,GPU1) has GPUs without NVLink between them (worst link PIX)"));
  EXPECT_TRUE(has(w, "TP group 1 (GPU2,GPU3) has GPUs without NVLink between them (worst link PHB)"));
  EXPECT_FALSE(has(w, "spans CPU sockets"));
  // Only the H100 pair: no mixed models, no FP8 warning.
  Placement h100 = place_ranks(t, 2, 1);
  EXPECT_EQ(h100.rank_gpu, (std::vector<int>{0, 1}));
  w = topology_warnings(t, h100);
  EXPECT_FALSE(has(w, "mixed"));
  EXPECT_FALSE(has(w, "FP8"));

  const std::string text = topology_text(t, &two, topology_warnings(t, two));
  EXPECT_NE(text.find("GPU0          X    PIX    SYS    SYS"), std::string::npos) << text;
  EXPECT_NE(text.find("rank 3   TP group 1   GPU3"), std::string::npos) << text;
  Json j = topology_json(t, &two, {});
  EXPECT_EQ(j["links"][2][3], "PHB");
  EXPECT_EQ(j["gpus"][0]["compute_capability"], "9.0");
  EXPECT_EQ(j["placement"]["rank_gpu"], Json::array({0, 1, 2, 3}));
}

TEST(Topo, NvSwitchBoardHasNoWarnings) {
  // Eight H200s, every one with 18 NVLinks to the NVSwitches (an HGX board), two sockets.
  std::string gpus, links, switch_links;
  for (int i = 0; i < 8; ++i) {
    gpus += fmt::format(R"({}{{"name": "NVIDIA H200", "memory_gib": 140, "cc": [9, 0], "bus": "00000000:{:02X}:00.0", "numa": {}}})",
                        i ? "," : "", 0x18 + i, i / 4);
    std::string row;
    for (int k = 0; k < 8; ++k) row += fmt::format("{}\"{}\"", k ? "," : "", i == k ? "X" : (i / 4 == k / 4 ? "NODE" : "SYS"));
    links += fmt::format("{}[{}]", i ? "," : "", row);
    switch_links += fmt::format("{}18", i ? "," : "");
  }
  Topology t = with_config(fmt::format(R"({{"gpus": [{}], "links": [{}], "switch_links": [{}]}})", gpus, links, switch_links));
  ASSERT_TRUE(t.available) << t.reason;
  EXPECT_EQ(link_name(t.links[0][7]), "NV18");
  EXPECT_EQ(topology_warnings(t, place_ranks(t, 4, 8)), std::vector<std::string>{});
  // NVLink everywhere, but a TP group of 8 still spans the two sockets' NUMA nodes.
  EXPECT_TRUE(has(topology_warnings(t, place_ranks(t, 8, 8)), "spans CPU sockets"));
  // The placement keeps TP groups inside a NUMA node.
  Placement p = place_ranks(t, 4, 8);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(t.gpus[size_t(p.rank_gpu[size_t(r)])].numa_node, r / 4);
}

TEST(Topo, DirectNvLinksPairGpus) {
  // NVLink bridges between 0-1 and 2-3 only (PCIe otherwise): a TP 2 placement pairs them.
  Topology t = with_config(R"({"gpus": [
    {"name": "NVIDIA RTX A6000", "memory_gib": 48, "cc": [8, 6], "bus": "00000000:01:00.0", "numa": 0},
    {"name": "NVIDIA RTX A6000", "memory_gib": 48, "cc": [8, 6], "bus": "00000000:02:00.0", "numa": 0},
    {"name": "NVIDIA RTX A6000", "memory_gib": 48, "cc": [8, 6], "bus": "00000000:03:00.0", "numa": 0},
    {"name": "NVIDIA RTX A6000", "memory_gib": 48, "cc": [8, 6], "bus": "00000000:04:00.0", "numa": 0}],
   "links": [["X", "PXB", "NV4", "PXB"], ["PXB", "X", "PXB", "NV4"], ["NV4", "PXB", "X", "PXB"], ["PXB", "NV4", "PXB", "X"]]})");
  ASSERT_TRUE(t.available);
  EXPECT_EQ(link_name(t.links[0][2]), "NV4");
  Placement p = place_ranks(t, 2, 4);
  EXPECT_EQ(p.rank_gpu, (std::vector<int>{0, 2, 1, 3}));
  EXPECT_FALSE(has(topology_warnings(t, p), "without NVLink"));
}

TEST(Topo, NoLibraryMeansNoGpus) {
  Topology t = read_topology("/nonexistent/libnvidia-ml.so.1");
  EXPECT_FALSE(t.available);
  EXPECT_NE(t.reason.find("cannot load /nonexistent/libnvidia-ml.so.1"), std::string::npos) << t.reason;
  EXPECT_NE(topology_text(t, nullptr, {}).find("No NVIDIA GPU found"), std::string::npos);
  EXPECT_EQ(topology_json(t, nullptr, {})["available"], false);
  unsetenv("FAKE_NVML_CONFIG");
  t = read_topology(FAKE_NVML_PATH);  // the library loads, its init fails
  EXPECT_FALSE(t.available);
  EXPECT_NE(t.reason.find("nvmlInit failed"), std::string::npos) << t.reason;
}

TEST(Topo, PlacementErrors) {
  Topology t = with_config(kMixedPcie);
  EXPECT_THROW(place_ranks(t, 8, 1), Error);  // more ranks than GPUs
  EXPECT_THROW(place_ranks(t, 3, 2), Error);  // not multiples
  EXPECT_THROW(place_ranks(t, 0, 1), Error);
}

// Startup checks of a parallel job (group_check.h): each rank's GPU as its node's NVML
// describes it, judged together.
TEST(GroupCheck, MixedModelsAreAnErrorAndPcieTpAWarning) {
  Topology t = with_config(kMixedPcie);
  std::vector<RankGpu> ranks;
  for (int i = 0; i < 4; ++i) ranks.push_back(RankGpu::from_json(describe_rank_gpu(t, "node1", i).to_json()));
  EXPECT_EQ(ranks[2].name, "NVIDIA A100-PCIE-40GB");
  EXPECT_EQ(ranks[0].links[1], "PIX");
  GroupCheck c = check_rank_gpus(ranks, 2);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_NE(c.errors[0].find("mixed GPU models in one job (ranks 0-1 on NVIDIA H100 PCIe, ranks 2-3 on NVIDIA "
                             "A100-PCIE-40GB)"),
            std::string::npos)
      << c.errors[0];
  EXPECT_TRUE(has(c.warnings, "tensor-parallel group 0 has GPUs without NVLink between them (rank 0 (GPU 0) and "
                              "rank 1 (GPU 1) on node1 are linked by PIX)"));
  EXPECT_TRUE(has(c.warnings, "tensor-parallel group 1 has GPUs without NVLink between them"));
  // One model: no error; TP 1: no link warning.
  std::vector<RankGpu> h100s(ranks.begin(), ranks.begin() + 2);
  EXPECT_TRUE(check_rank_gpus(h100s, 2).errors.empty());
  EXPECT_TRUE(check_rank_gpus(h100s, 1).warnings.empty());
}

TEST(GroupCheck, NvlinkSharedGpusAndNodes) {
  Topology t = with_config(R"({"gpus": [
    {"name": "NVIDIA H200", "memory_gib": 140, "cc": [9, 0], "bus": "00000000:18:00.0", "numa": 0},
    {"name": "NVIDIA H200", "memory_gib": 140, "cc": [9, 0], "bus": "00000000:2A:00.0", "numa": 0}],
   "links": [["X", "NV18"], ["NV18", "X"]]})");
  const RankGpu a = describe_rank_gpu(t, "n1", 0), b = describe_rank_gpu(t, "n1", 1);
  EXPECT_EQ(a.links[1], "NV18");
  GroupCheck nv = check_rank_gpus({a, b}, 2);
  EXPECT_TRUE(nv.errors.empty());
  EXPECT_TRUE(nv.warnings.empty()) << nv.warnings[0];
  // Two ranks on one GPU (the single-GPU test machine): nothing to warn about.
  EXPECT_TRUE(check_rank_gpus({a, a}, 2).warnings.empty());
  // The same GPUs on two nodes: TP across the network.
  RankGpu far = b;
  far.host = "n2";
  EXPECT_TRUE(has(check_rank_gpus({a, far}, 2).warnings, "tensor-parallel group 0 spans nodes"));
  EXPECT_TRUE(check_rank_gpus({a, far}, 1).warnings.empty());
  // A rank on the CPU beside GPU ranks is an error; a job all on the CPU checks nothing.
  GroupCheck mixed = check_rank_gpus({a, cpu_rank("n1")}, 1);
  ASSERT_EQ(mixed.errors.size(), 1u);
  EXPECT_NE(mixed.errors[0].find("some ranks run on the CPU (rank 1) and some on GPUs (rank 0)"), std::string::npos) << mixed.errors[0];
  EXPECT_TRUE(check_rank_gpus({cpu_rank("n1"), cpu_rank("n1")}, 2).errors.empty());
  // No such GPU, or no NVML: a warning, not a failure.
  const RankGpu missing = describe_rank_gpu(t, "n1", 5);
  EXPECT_NE(missing.problem.find("none with index 5"), std::string::npos) << missing.problem;
  GroupCheck unknown = check_rank_gpus({a, missing}, 2);
  EXPECT_TRUE(unknown.errors.empty());
  EXPECT_TRUE(has(unknown.warnings, "the GPUs of rank 1 could not be checked"));
  EXPECT_NE(describe_rank_gpu(read_topology("/nonexistent/libnvidia-ml.so.1"), "n1", 0).problem.find("NVML is not "
                                                                                                     "available"),
            std::string::npos);
}

// A rank's CUDA device under CUDA_VISIBLE_DEVICES is another NVML index: ranks that each see
// their own GPU as device 0 must be told apart (two ranks on one GPU cannot use NCCL).
TEST(GroupCheck, CudaVisibleDevicesMapCudaDevicesToNvmlGpus) {
  Topology t = with_config(R"({"gpus": [
    {"name": "NVIDIA H200", "memory_gib": 140, "cc": [9, 0], "bus": "00000000:18:00.0", "numa": 0},
    {"name": "NVIDIA H200", "memory_gib": 140, "cc": [9, 0], "bus": "00000000:2A:00.0", "numa": 0},
    {"name": "NVIDIA H200", "memory_gib": 140, "cc": [9, 0], "bus": "00000000:3B:00.0", "numa": 0}],
   "links": [["X", "NV18", "NV18"], ["NV18", "X", "NV18"], ["NV18", "NV18", "X"]]})");
  std::string problem;
  EXPECT_EQ(nvml_index_of_cuda_device(t, 1, nullptr, problem), 1);
  EXPECT_EQ(nvml_index_of_cuda_device(t, 0, "2", problem), 2);
  EXPECT_EQ(nvml_index_of_cuda_device(t, 1, "2, 0", problem), 0);
  EXPECT_EQ(nvml_index_of_cuda_device(t, 1, ("0," + t.gpus[2].uuid).c_str(), problem), 2);
  EXPECT_TRUE(problem.empty()) << problem;
  EXPECT_EQ(nvml_index_of_cuda_device(t, 1, "2", problem), -1);
  EXPECT_NE(problem.find("CUDA_VISIBLE_DEVICES='2' has no device 1"), std::string::npos) << problem;
  EXPECT_EQ(nvml_index_of_cuda_device(t, 0, "MIG-4f0e2c1a", problem), -1);
  EXPECT_NE(problem.find("'MIG-4f0e2c1a' (device 0) is none of the 3 GPUs"), std::string::npos) << problem;
  EXPECT_EQ(nvml_index_of_cuda_device(t, 0, "7", problem), -1);
}

}  // namespace
}  // namespace dsi::topo
