#include "parallel/gpu_group_check.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "core/log.h"

namespace dsi {

namespace {

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

// This rank's GPU as its node's NVML sees it: CUDA's device_index is one of the GPUs
// CUDA_VISIBLE_DEVICES leaves, which tells ranks apart that each see theirs as device 0.
topo::RankGpu describe_mine(bool on_gpu, int device_index, const std::string& nvml_library) {
  if (!on_gpu) return topo::cpu_rank(host_name());
  const topo::Topology t = topo::read_topology(nvml_library);
  if (!t.available) return topo::describe_rank_gpu(t, host_name(), device_index);
  std::string problem;
  const int index = topo::nvml_index_of_cuda_device(t, device_index, std::getenv("CUDA_VISIBLE_DEVICES"), problem);
  topo::RankGpu g = topo::describe_rank_gpu(t, host_name(), index < 0 ? device_index : index);
  if (index < 0) g.problem = problem;
  return g;
}

}  // namespace

std::vector<topo::RankGpu> gather_rank_gpus(Communicator& world, const topo::RankGpu& mine) {
  const std::string text = mine.to_json().dump();
  const size_t n = size_t(world.size());
  // Lengths first (exact in float32: a description is a few hundred bytes), then the texts.
  std::vector<float> lengths(n);
  const std::vector<float> my_length = {float(text.size())};
  world.all_gather(my_length, lengths);
  std::vector<std::byte> send;
  for (size_t p = 0; p < n; ++p)
    send.insert(send.end(), reinterpret_cast<const std::byte*>(text.data()),
                reinterpret_cast<const std::byte*>(text.data()) + text.size());
  std::vector<int64_t> send_counts(n, int64_t(text.size())), recv_counts(n);
  int64_t total = 0;
  for (size_t p = 0; p < n; ++p) total += recv_counts[p] = int64_t(lengths[p]);
  std::vector<std::byte> recv(static_cast<size_t>(total));
  world.all_to_all(send, send_counts, recv, recv_counts);
  std::vector<topo::RankGpu> out;
  int64_t at = 0;
  for (size_t p = 0; p < n; ++p) {
    const std::string one(reinterpret_cast<const char*>(recv.data()) + at, size_t(recv_counts[p]));
    at += recv_counts[p];
    out.push_back(topo::RankGpu::from_json(Json::parse(one)));
  }
  return out;
}

namespace {

// Every rank's GPU (gathered) and the checks' findings, warnings logged by rank 0; throws the
// first error.
topo::GroupCheck checked_rank_gpus(const ParallelContext& p, bool on_gpu, int device_index,
                                   const std::string& nvml_library, std::vector<topo::RankGpu>& all) {
  all = gather_rank_gpus(*p.world, describe_mine(on_gpu, device_index, nvml_library));
  topo::GroupCheck check = topo::check_rank_gpus(all, p.tp_size);
  if (p.is_root())
    for (const std::string& w : check.warnings) spdlog::warn("{}", w);
  if (!check.errors.empty()) fail("{}", check.errors.front());
  return check;
}

}  // namespace

topo::GroupCheck check_gpu_group(const ParallelContext& p, bool on_gpu, int device_index,
                                 const std::string& nvml_library) {
  if (!p.world) return {};
  std::vector<topo::RankGpu> all;
  return checked_rank_gpus(p, on_gpu, device_index, nvml_library, all);
}

DeviceCollectivesMode check_gpus_and_collectives(const ParallelContext& p, bool on_gpu, int device_index,
                                                 DeviceCollectivesMode wanted, bool nccl_built,
                                                 const std::string& nvml_library) {
  if (!p.world) return DeviceCollectivesMode::device_collectives_host;
  std::vector<topo::RankGpu> all;
  checked_rank_gpus(p, on_gpu, device_index, nvml_library, all);
  const DeviceCollectivesChoice choice = choose_device_collectives(wanted, all, nccl_built);
  if (p.is_root()) spdlog::info("collectives: {}", choice.reason);
  return choice.mode;
}

}  // namespace dsi
