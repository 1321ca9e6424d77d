// What carries the model's collectives (parallel/collective_choice.h) for given ranks' GPUs and
// flags, the factory's refusals, and the host-staged collectives on the CPU backend with a
// group of one (the many-rank host path runs under mpirun in parallel_layouts_test and the DP
// tests, against one process).
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "backend/backend_factory.h"
#include "parallel/device_collectives_factory.h"

namespace dsi {
namespace {

using Mode = DeviceCollectivesMode;

topo::RankGpu gpu(const std::string& host, int index, const std::string& bus) {
  topo::RankGpu g;
  g.host = host;
  g.index = index;
  g.name = "NVIDIA H200";
  g.bus_id = bus;
  return g;
}

const std::string kBus0 = "00000000:18:00.0", kBus1 = "00000000:2A:00.0";

std::string error_of(Mode wanted, const std::vector<topo::RankGpu>& ranks, bool nccl_built) {
  try {
    choose_device_collectives(wanted, ranks, nccl_built);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DeviceCollectivesChoice, NcclWhenEveryRankHasItsOwnGpu) {
  const std::vector<topo::RankGpu> two = {gpu("h", 0, kBus0), gpu("h", 1, kBus1)};
  EXPECT_EQ(choose_device_collectives(Mode::device_collectives_auto, two, true).mode, Mode::device_collectives_nccl);
  EXPECT_EQ(choose_device_collectives(Mode::device_collectives_nccl, two, true).mode, Mode::device_collectives_nccl);
  EXPECT_EQ(choose_device_collectives(Mode::device_collectives_host, two, true).mode, Mode::device_collectives_host);
  // The same bus id on two machines is two GPUs.
  const std::vector<topo::RankGpu> nodes = {gpu("a", 0, kBus0), gpu("b", 0, kBus0)};
  EXPECT_EQ(choose_device_collectives(Mode::device_collectives_auto, nodes, true).mode, Mode::device_collectives_nccl);
}

TEST(DeviceCollectivesChoice, HostWhereNcclCannotRunAndAnErrorWhenForced) {
  const std::vector<topo::RankGpu> shared = {gpu("h", 0, kBus0), gpu("h", 1, kBus1), gpu("h", 0, kBus0)};
  const DeviceCollectivesChoice c = choose_device_collectives(Mode::device_collectives_auto, shared, true);
  EXPECT_EQ(c.mode, Mode::device_collectives_host);
  EXPECT_NE(c.reason.find("ranks 0 and 2 share GPU 0 (00000000:18:00.0) on host h"), std::string::npos) << c.reason;
  const std::string e = error_of(Mode::device_collectives_nccl, shared, true);
  EXPECT_NE(e.find("--device-collectives nccl: ranks 0 and 2 share GPU 0 (00000000:18:00.0) on host h"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("Duplicate GPU detected"), std::string::npos) << e;
  EXPECT_NE(e.find("--device-collectives host"), std::string::npos) << e;

  const std::vector<topo::RankGpu> cpu = {topo::cpu_rank("h"), topo::cpu_rank("h")};
  EXPECT_EQ(choose_device_collectives(Mode::device_collectives_auto, cpu, true).mode, Mode::device_collectives_host);
  EXPECT_NE(error_of(Mode::device_collectives_nccl, cpu, true).find("rank 0 runs on the CPU"), std::string::npos);

  const std::vector<topo::RankGpu> two = {gpu("h", 0, kBus0), gpu("h", 1, kBus1)};
  EXPECT_EQ(choose_device_collectives(Mode::device_collectives_auto, two, false).mode, Mode::device_collectives_host);
  EXPECT_NE(error_of(Mode::device_collectives_nccl, two, false).find("this build has no NCCL"), std::string::npos);
}

TEST(DeviceCollectivesChoice, AGpuThatCouldNotBeDescribedKeepsAutoOnTheHost) {
  std::vector<topo::RankGpu> two = {gpu("h", 0, kBus0), gpu("h", 1, "")};
  two[1].problem = "NVML is not available (no driver)";
  const DeviceCollectivesChoice c = choose_device_collectives(Mode::device_collectives_auto, two, true);
  EXPECT_EQ(c.mode, Mode::device_collectives_host);
  EXPECT_NE(c.reason.find("the GPU of rank 1 could not be described"), std::string::npos) << c.reason;
  // Forced, it runs (NCCL itself refuses a shared device at its init).
  EXPECT_EQ(choose_device_collectives(Mode::device_collectives_nccl, two, true).mode, Mode::device_collectives_nccl);
}

TEST(DeviceCollectivesChoice, OneRankMovesNothing) {
  for (Mode m : {Mode::device_collectives_auto, Mode::device_collectives_nccl, Mode::device_collectives_host}) {
    EXPECT_EQ(choose_device_collectives(m, {gpu("h", 0, kBus0)}, false).mode, Mode::device_collectives_host);
    EXPECT_EQ(choose_device_collectives(m, {topo::cpu_rank("h")}, true).mode, Mode::device_collectives_host);
  }
}

TEST(DeviceCollectivesChoice, ParsesTheFlagsValues) {
  EXPECT_EQ(parse_device_collectives("auto"), Mode::device_collectives_auto);
  EXPECT_EQ(parse_device_collectives("nccl"), Mode::device_collectives_nccl);
  EXPECT_EQ(parse_device_collectives("host"), Mode::device_collectives_host);
  for (Mode m : {Mode::device_collectives_auto, Mode::device_collectives_nccl, Mode::device_collectives_host})
    EXPECT_EQ(parse_device_collectives(device_collectives_name(m)), m);
  EXPECT_THROW(parse_device_collectives("mpi"), Error);
}

TEST(DeviceCollectivesFactory, HostStagedForTheHostModeAndGroupsOfOne) {
  auto be = make_cpu_backend();
  auto self = std::make_shared<SelfCommunicator>("tp");
  EXPECT_STREQ(make_device_collectives(Mode::device_collectives_host, self, *be, nullptr)->transport(), "host");
  // A group of one needs no NCCL, whatever the build.
  EXPECT_STREQ(make_device_collectives(Mode::device_collectives_nccl, self, *be, nullptr)->transport(), "host");
  EXPECT_THROW(make_device_collectives(Mode::device_collectives_auto, self, *be, nullptr), Error);
  EXPECT_THROW(make_device_collectives(Mode::device_collectives_host, nullptr, *be, nullptr), Error);
}

// One rank: the all-reduce is the identity and the all-to-all copies the counted rows.
TEST(HostStagedCollectives, OneRankOnTheCpuBackend) {
  auto be = make_cpu_backend();
  HostStagedCollectives c(std::make_shared<SelfCommunicator>("world"), *be);
  Buffer a = be->alloc(DType::f32, 5, 3), b = be->alloc(DType::f32, 6, 3);
  std::iota(a.t.row<float>(0), a.t.row<float>(0) + 15, 0.25f);
  const std::vector<float> in(a.t.row<float>(0), a.t.row<float>(0) + 15);
  c.all_reduce_sum(a.t);
  EXPECT_EQ(std::vector<float>(a.t.row<float>(0), a.t.row<float>(0) + 15), in);
  std::fill(b.t.row<float>(0), b.t.row<float>(0) + 18, -1.0f);
  const std::vector<int64_t> rows = {4};
  c.all_to_all(a.t, rows, b.t, rows);
  EXPECT_EQ(std::vector<float>(b.t.row<float>(0), b.t.row<float>(0) + 12), std::vector<float>(in.begin(), in.begin() + 12));
  EXPECT_EQ(b.t.row<float>(4)[0], -1.0f);  // past the counted rows: untouched
  // Counts that do not fit, or rows of another width, are named errors.
  const std::vector<int64_t> too_many = {7};
  EXPECT_THROW(c.all_to_all(a.t, too_many, b.t, too_many), Error);
  Buffer narrow = be->alloc(DType::f32, 6, 2);
  EXPECT_THROW(c.all_to_all(a.t, rows, narrow.t, rows), Error);
}

}  // namespace
}  // namespace dsi
