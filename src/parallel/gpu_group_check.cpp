#include "parallel/gpu_group_check.h"

#include <unistd.h>

#include <climits>
#include <cstring>

#include "core/log.h"

namespace dsi {

namespace {

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
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

topo::GroupCheck check_gpu_group(const ParallelContext& p, bool on_gpu, int device_index,
                                 const std::string& nvml_library) {
  if (!p.world) return {};
  const topo::RankGpu mine = on_gpu
                                 ? topo::describe_rank_gpu(topo::read_topology(nvml_library), host_name(), device_index)
                                 : topo::cpu_rank(host_name());
  const std::vector<topo::RankGpu> all = gather_rank_gpus(*p.world, mine);
  topo::GroupCheck check = topo::check_rank_gpus(all, p.tp_size);
  if (p.is_root())
    for (const std::string& w : check.warnings) spdlog::warn("{}", w);
  if (!check.errors.empty()) fail("{}", check.errors.front());
  return check;
}

}  // namespace dsi
