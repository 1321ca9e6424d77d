// The communicators against their contract, in a real MPI world: run as one process (the
// SelfCommunicator, no MPI) and under `mpirun -np 2` and `-np 4` (ctest label mpi). Every
// rank runs every test in the same order, as collectives require.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "backend/backend_factory.h"
#include "parallel/launch.h"
#include "parallel/mpi_communicator.h"
#include "parallel/timed_communicator.h"

namespace dsi {
namespace {

std::shared_ptr<Communicator> g_world;  // test fixture state only (set up in main)

Communicator& world() { return *g_world; }

TEST(Communicator, AllReduceSumsInRankOrderIdenticallyOnEveryRank) {
  const int r = world().rank(), n = world().size();
  const size_t len = 1000;
  // Every rank's inputs, made once (so that no expression is evaluated two ways).
  std::vector<float> inputs(len * size_t(n));
  for (int p = 0; p < n; ++p)
    for (size_t i = 0; i < len; ++i) inputs[size_t(p) * len + i] = float(p + 1) * 0.1f + float(i) * 1e-3f;
  std::vector<float> data(inputs.begin() + std::ptrdiff_t(size_t(r) * len),
                          inputs.begin() + std::ptrdiff_t(size_t(r + 1) * len));
  world().all_reduce_sum(data);
  for (size_t i = 0; i < len; ++i) {
    float want = inputs[i];  // the documented order: rank 0, then 1, ...
    for (int p = 1; p < n; ++p) want += inputs[size_t(p) * len + i];
    ASSERT_EQ(data[i], want) << "element " << i;  // bit-identical: same order on every rank
  }
}

TEST(Communicator, AllReduceBf16SumsInFloat32) {
  const int n = world().size();
  // n x 1.5 is exact in bf16 for n <= 4 (at most 3 significant bits).
  std::vector<uint16_t> data(64, f32_to_bf16(1.5f));
  world().all_reduce_sum_bf16(data);
  for (uint16_t v : data) ASSERT_EQ(bf16_to_f32(v), 1.5f * float(n));
}

TEST(Communicator, AllGatherConcatenatesInRankOrder) {
  const int r = world().rank(), n = world().size();
  std::vector<float> send = {float(r), float(r) + 0.5f, -float(r)};
  std::vector<float> recv(send.size() * size_t(n));
  world().all_gather(send, recv);
  for (int p = 0; p < n; ++p) {
    EXPECT_EQ(recv[size_t(p) * 3 + 0], float(p));
    EXPECT_EQ(recv[size_t(p) * 3 + 1], float(p) + 0.5f);
    EXPECT_EQ(recv[size_t(p) * 3 + 2], -float(p));
  }
}

TEST(Communicator, ReduceScatterGivesEachRankItsBlockOfTheSum) {
  const int r = world().rank(), n = world().size();
  const size_t block = 5;
  std::vector<float> send(block * size_t(n));
  for (size_t i = 0; i < send.size(); ++i) send[i] = float(i) + 100.0f * float(r);
  std::vector<float> recv(block);
  world().reduce_scatter(send, recv);
  for (size_t i = 0; i < block; ++i) {
    float want = 0;
    for (int p = 0; p < n; ++p) want += float(size_t(r) * block + i) + 100.0f * float(p);
    EXPECT_EQ(recv[i], want);
  }
}

TEST(Communicator, AllToAllWithPerPeerCounts) {
  const int r = world().rank(), n = world().size();
  // Rank r sends (r + 1) * (p + 1) bytes of value 16 r + p to peer p; so it receives
  // (p + 1) * (r + 1) bytes of value 16 p + r from each p.
  const size_t n_peers = size_t(n);
  std::vector<int64_t> sc(n_peers), rc(n_peers);
  std::vector<std::byte> send;
  for (int p = 0; p < n; ++p) {
    sc[size_t(p)] = int64_t(r + 1) * (p + 1);
    rc[size_t(p)] = int64_t(p + 1) * (r + 1);
    send.insert(send.end(), size_t(sc[size_t(p)]), std::byte(16 * r + p));
  }
  std::vector<std::byte> recv(size_t(std::accumulate(rc.begin(), rc.end(), int64_t(0))));
  world().all_to_all(send, sc, recv, rc);
  size_t at = 0;
  for (int p = 0; p < n; ++p)
    for (int64_t i = 0; i < rc[size_t(p)]; ++i) ASSERT_EQ(recv[at++], std::byte(16 * p + r)) << "from peer " << p;
}

TEST(Communicator, BroadcastFromTheLastRank) {
  const int r = world().rank(), root = world().size() - 1;
  std::vector<std::byte> data(10000, std::byte(r));
  world().broadcast(data, root);
  for (std::byte b : data) ASSERT_EQ(b, std::byte(root));
  world().barrier();
}

TEST(Communicator, SplitMakesGroupsOfTheSameColor) {
  const int r = world().rank(), n = world().size();
  auto half = world().split(r % 2, r, "half");
  EXPECT_EQ(half->size(), (n + 1 - r % 2) / 2);
  EXPECT_EQ(half->rank(), r / 2);
  EXPECT_EQ(half->name(), "half");
  std::vector<float> v = {1.0f};
  half->all_reduce_sum(v);
  EXPECT_EQ(v[0], float(half->size()));
}

// The step's communication phase: a TimedCommunicator passes every call through unchanged and
// adds its time to the clock it shares with its splits.
TEST(Communicator, TimedCommunicatorCountsEveryCallAndItsSplits) {
  const int r = world().rank(), n = world().size();
  auto clock = std::make_shared<CommunicationClock>();
  TimedCommunicator timed(world().split(0, r, "timed"), clock);
  EXPECT_EQ(timed.size(), n);
  EXPECT_EQ(timed.rank(), r);
  EXPECT_EQ(timed.name(), "timed");
  timed.set_timeout(std::chrono::seconds(7));
  EXPECT_EQ(timed.timeout(), std::chrono::seconds(7));
  std::vector<float> data = {float(r + 1)};
  timed.all_reduce_sum(data);
  EXPECT_EQ(data[0], float(n * (n + 1) / 2));
  timed.barrier();
  EXPECT_EQ(clock->calls(), 2);
  auto half = timed.split(r % 2, r, "half");  // timed on the same clock
  half->barrier();
  EXPECT_EQ(clock->calls(), 3);
  EXPECT_GE(clock->seconds(), 0.0);
  if (n > 1) {
    EXPECT_GT(clock->seconds(), 0.0);  // real messages between processes take time
  }
}

TEST(Communicator, AMissingPeerIsATimeoutNamingTheCollective) {
  ASSERT_GT(world().size(), 1) << "needs peers: run under mpirun (ctest: communicator_test_np2 / _np4)";
  auto group = world().split(0, world().rank(), "timeout_group");
  group->set_timeout(std::chrono::milliseconds(300));
  std::vector<float> v(16, 1.0f);
  if (world().rank() == 0) {
    const auto start = std::chrono::steady_clock::now();
    try {
      group->all_reduce_sum(v);
      FAIL() << "all_reduce completed without its peers";
    } catch (const CollectiveTimeout& e) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      EXPECT_NE(std::string(e.what()).find("all_reduce on group 'timeout_group'"), std::string::npos) << e.what();
      EXPECT_GE(secs, 0.3);
      EXPECT_LT(secs, 5.0);  // it fired, rather than waiting for the late peers
    }
    try {
      group->barrier();
      FAIL() << "a timed-out group must refuse further collectives";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("unusable"), std::string::npos) << e.what();
    }
  } else {
    // Late, so rank 0 times out first; joining lets its abandoned request complete.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    group->all_reduce_sum(v);
  }
  world().barrier();
}

TEST(Launch, ReadsTheLaunchersVariables) {
  LaunchInfo info = detect_launch();
  EXPECT_EQ(info.size, world().size());
  EXPECT_EQ(info.rank, world().rank());
  // mpirun on one machine: every rank is on this node, so its local rank is its rank.
  EXPECT_EQ(info.local_rank, world().rank());
}

// The rank's GPU: a given index as it is, else local rank modulo the GPUs seen, 0 with none.
TEST(Launch, PickGpuKeepsAGivenIndexAndOtherwiseSpreadsByLocalRank) {
  EXPECT_EQ(pick_gpu(3, 5, 8), 3);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(pick_gpu(-1, r, 8), r);
  EXPECT_EQ(pick_gpu(-1, 9, 8), 1);   // a second node's rank 9 seen as local 9: wraps
  EXPECT_EQ(pick_gpu(-1, 1, 1), 0);   // two ranks on one GPU share it
  EXPECT_EQ(pick_gpu(-1, 4, 0), 0);   // no GPU
}

}  // namespace
}  // namespace dsi

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<dsi::MpiSession> session;
  const dsi::LaunchInfo launch = dsi::detect_launch();
  if (launch.size > 1) {
    session = std::make_unique<dsi::MpiSession>();
    dsi::g_world = dsi::MpiCommunicator::world();
    dsi::g_world->set_timeout(std::chrono::seconds(20));
    // Only rank 0 prints results; the others' failures still fail the run (exit code).
    if (dsi::g_world->rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
    }
  } else {
    dsi::g_world = std::make_shared<dsi::SelfCommunicator>();
  }
  int rc = RUN_ALL_TESTS();
  dsi::g_world.reset();
  return rc;
}
