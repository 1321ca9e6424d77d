// The parallel flags as logits, generate and serve parse them (engine/parallel_flags.h):
// --device-collectives and vLLM's short -tp / -dp.
#include <gtest/gtest.h>

#include "engine/parallel_flags.h"

namespace dsi {
namespace {

ParallelOptions parse(std::vector<std::string> args) {
  ParallelOptions o;
  CLI::App app;
  add_parallel_flags(&app, o);
  args.insert(args.begin(), "dsinfer");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  // As apps/dsinfer.cpp does.
  std::vector<std::string> expanded = expand_short_parallel_flags(int(argv.size()), argv.data());
  std::vector<char*> expanded_ptrs;
  for (auto& a : expanded) expanded_ptrs.push_back(a.data());
  app.parse(int(expanded_ptrs.size()), expanded_ptrs.data());
  return o;
}

TEST(ParallelFlags, DeviceCollectives) {
  EXPECT_EQ(parse({}).device_collectives, DeviceCollectivesMode::device_collectives_auto);
  EXPECT_EQ(parse({"--device-collectives", "nccl"}).device_collectives, DeviceCollectivesMode::device_collectives_nccl);
  EXPECT_EQ(parse({"--device-collectives=host", "-tp", "2"}).device_collectives,
            DeviceCollectivesMode::device_collectives_host);
  EXPECT_EQ(parse({"--device-collectives", "auto"}).device_collectives, DeviceCollectivesMode::device_collectives_auto);
  EXPECT_THROW(parse({"--device-collectives", "mpi"}), CLI::ValidationError);
}

TEST(ParallelFlags, ShortSizesAndTheTimeout) {
  const ParallelOptions o = parse({"-tp=2", "-dp", "3", "--collective-timeout", "7.5"});
  EXPECT_EQ(o.tensor_parallel_size, 2);
  EXPECT_EQ(o.data_parallel_size, 3);
  EXPECT_DOUBLE_EQ(o.collective_timeout_s, 7.5);
}

}  // namespace
}  // namespace dsi
