// The GPU startup checks across real ranks (under mpirun -np 2, label mpi; one process checks
// nothing): every rank describes its GPU from the fake NVML library of the topo tests, the
// descriptions are gathered, and every rank reaches the same verdict: mixed GPU models fail
// on every rank (checked_on_every_rank then prints it once and all exit non-zero), TP over
// PCIe is a warning only; and the choice of the model's device collectives from the same list.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "parallel/gpu_group_check.h"
#include "parallel/launch.h"
#include "parallel/mpi_communicator.h"
#include "parallel/parallel_runtime.h"

namespace dsi {
namespace {

std::shared_ptr<Communicator> g_world;

ParallelContext context(int tp) {
  ParallelContext p;
  p.world_rank = g_world->rank();
  p.world_size = g_world->size();
  p.tp_size = tp;
  p.world = g_world;
  return p;
}

void use_fake_nvml(const std::string& json) {
  const std::string path = fmt::format("{}fake_nvml_rank{}.json", ::testing::TempDir(), g_world->rank());
  std::ofstream(path) << json;
  setenv("FAKE_NVML_CONFIG", path.c_str(), 1);
}

// GPU i is an H100 for even i, an A100 for odd i; PCIe between all.
const char* kMixed = R"({"gpus": [
  {"name": "NVIDIA H100 PCIe", "memory_gib": 80, "cc": [9, 0], "bus": "00000000:18:00.0", "numa": 0},
  {"name": "NVIDIA A100-PCIE-40GB", "memory_gib": 40, "cc": [8, 0], "bus": "00000000:3B:00.0", "numa": 0}],
 "links": [["X", "PIX"], ["PIX", "X"]]})";
const char* kSame = R"({"gpus": [
  {"name": "NVIDIA H100 PCIe", "memory_gib": 80, "cc": [9, 0], "bus": "00000000:18:00.0", "numa": 0},
  {"name": "NVIDIA H100 PCIe", "memory_gib": 80, "cc": [9, 0], "bus": "00000000:3B:00.0", "numa": 0}],
 "links": [["X", "PIX"], ["PIX", "X"]]})";

TEST(GpuGroupCheck, GathersEveryRanksGpuInRankOrder) {
  topo::RankGpu mine;
  mine.host = fmt::format("h{}", g_world->rank() * 7);  // different lengths on each rank
  mine.index = g_world->rank();
  const auto all = gather_rank_gpus(*g_world, mine);
  ASSERT_EQ(all.size(), size_t(g_world->size()));
  for (int r = 0; r < g_world->size(); ++r) {
    EXPECT_EQ(all[size_t(r)].host, fmt::format("h{}", r * 7));
    EXPECT_EQ(all[size_t(r)].index, r);
  }
}

TEST(GpuGroupCheck, MixedModelsFailOnEveryRankPcieTpOnlyWarns) {
  const int r = g_world->rank();
  use_fake_nvml(kMixed);
  try {
    check_gpu_group(context(2), true, r, FAKE_NVML_PATH);
    ADD_FAILURE() << "rank " << r << ": mixed GPU models passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixed GPU models in one job (rank 0 on NVIDIA H100 PCIe, rank 1 on "
                                         "NVIDIA A100-PCIE-40GB)"),
              std::string::npos)
        << e.what();
  }
  // Through the startup agreement: every rank ends with ReportedByRootError (rank 0 printed it).
  EXPECT_THROW(checked_on_every_rank(context(2), [&] { check_gpu_group(context(2), true, r, FAKE_NVML_PATH); }),
               ReportedByRootError);

  use_fake_nvml(kSame);
  const topo::GroupCheck tp2 = check_gpu_group(context(2), true, r, FAKE_NVML_PATH);
  EXPECT_TRUE(tp2.errors.empty());
  ASSERT_EQ(tp2.warnings.size(), 1u);
  EXPECT_NE(tp2.warnings[0].find("linked by PIX"), std::string::npos) << tp2.warnings[0];
  EXPECT_TRUE(check_gpu_group(context(1), true, r, FAKE_NVML_PATH).warnings.empty());
  // All on the CPU: nothing to check; one on the CPU beside a GPU: an error on both.
  EXPECT_TRUE(check_gpu_group(context(2), false, 0).errors.empty());
  EXPECT_THROW(check_gpu_group(context(1), r == 0, 0, FAKE_NVML_PATH), Error);
}

// The model's collectives chosen from the gathered GPUs: NCCL when each rank has a GPU of its
// own; host when both ranks use GPU 0 (as on a one-GPU machine), and there `nccl` fails on
// every rank, printed once.
TEST(GpuGroupCheck, ChoosesTheDeviceCollectivesFromEveryRanksGpu) {
  using Mode = DeviceCollectivesMode;
  const int r = g_world->rank();
  use_fake_nvml(kSame);
  EXPECT_EQ(check_gpus_and_collectives(context(2), true, r, Mode::device_collectives_auto, true, FAKE_NVML_PATH),
            Mode::device_collectives_nccl);
  EXPECT_EQ(check_gpus_and_collectives(context(2), true, r, Mode::device_collectives_auto, false, FAKE_NVML_PATH),
            Mode::device_collectives_host);
  EXPECT_EQ(check_gpus_and_collectives(context(2), true, 0, Mode::device_collectives_auto, true, FAKE_NVML_PATH),
            Mode::device_collectives_host);
  try {
    check_gpus_and_collectives(context(2), true, 0, Mode::device_collectives_nccl, true, FAKE_NVML_PATH);
    ADD_FAILURE() << "rank " << r << ": nccl on a shared GPU passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--device-collectives nccl: ranks 0 and 1 share GPU 0 (00000000:18:00.0)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(checked_on_every_rank(context(2),
                                     [&] {
                                       check_gpus_and_collectives(context(2), true, 0, Mode::device_collectives_nccl,
                                                                  true, FAKE_NVML_PATH);
                                     }),
               ReportedByRootError);
  // On the CPU: host, and nccl refused.
  EXPECT_EQ(check_gpus_and_collectives(context(2), false, 0, Mode::device_collectives_auto, true),
            Mode::device_collectives_host);
  EXPECT_THROW(check_gpus_and_collectives(context(2), false, 0, Mode::device_collectives_nccl, true), Error);
}

}  // namespace
}  // namespace dsi

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<dsi::MpiSession> session;
  if (dsi::detect_launch().size > 1) {
    session = std::make_unique<dsi::MpiSession>();
    dsi::g_world = dsi::MpiCommunicator::world();
    dsi::g_world->set_timeout(std::chrono::seconds(20));
    if (dsi::g_world->rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
    }
  }
  if (!dsi::g_world || dsi::g_world->size() != 2) {
    std::fprintf(stderr, "gpu_group_check_test: run it under mpirun -np 2\n");
    return 1;
  }
  int rc = RUN_ALL_TESTS();
  dsi::g_world.reset();
  return rc;
}
