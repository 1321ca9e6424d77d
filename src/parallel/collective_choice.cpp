#include "parallel/collective_choice.h"

#include <fmt/format.h>

#include "core/error.h"

namespace dsi {

DeviceCollectivesMode parse_device_collectives(const std::string& text) {
  if (text == "auto") return DeviceCollectivesMode::device_collectives_auto;
  if (text == "nccl") return DeviceCollectivesMode::device_collectives_nccl;
  if (text == "host") return DeviceCollectivesMode::device_collectives_host;
  fail("--device-collectives '{}': expected auto, nccl or host", text);
}

const char* device_collectives_name(DeviceCollectivesMode m) {
  switch (m) {
    case DeviceCollectivesMode::device_collectives_auto: return "auto";
    case DeviceCollectivesMode::device_collectives_nccl: return "nccl";
    case DeviceCollectivesMode::device_collectives_host: return "host";
  }
  return "?";
}

std::string shared_gpu(const std::vector<topo::RankGpu>& ranks) {
  for (size_t a = 0; a < ranks.size(); ++a)
    for (size_t b = a + 1; b < ranks.size(); ++b) {
      const topo::RankGpu &x = ranks[a], &y = ranks[b];
      if (!x.gpu || !y.gpu || !x.problem.empty() || !y.problem.empty() || x.bus_id.empty()) continue;
      if (x.host == y.host && x.bus_id == y.bus_id)
        return fmt::format("ranks {} and {} share GPU {} ({}) on host {}", a, b, x.index, x.bus_id, x.host);
    }
  return {};
}

namespace {

using Mode = DeviceCollectivesMode;

// Why NCCL cannot run for these ranks, or empty when it can (`unsure` is set instead when a
// GPU could not be described).
std::string nccl_obstacle(const std::vector<topo::RankGpu>& ranks, bool nccl_built, std::string& unsure) {
  for (size_t r = 0; r < ranks.size(); ++r)
    if (!ranks[r].gpu) return fmt::format("rank {} runs on the CPU (NCCL moves GPU memory only)", r);
  if (!nccl_built) return "this build has no NCCL (CMake did not find libnccl and nccl.h)";
  if (std::string s = shared_gpu(ranks); !s.empty())
    return s + ", and NCCL refuses two ranks of a group on one device (\"Duplicate GPU detected\")";
  for (size_t r = 0; r < ranks.size(); ++r)
    if (!ranks[r].problem.empty()) {
      unsure = fmt::format("the GPU of rank {} could not be described ({}), so ranks sharing a GPU cannot be ruled out",
                           r, ranks[r].problem);
      break;
    }
  return {};
}

}  // namespace

DeviceCollectivesChoice choose_device_collectives(Mode wanted, const std::vector<topo::RankGpu>& ranks,
                                                  bool nccl_built) {
  if (ranks.size() <= 1) return {Mode::device_collectives_host, "one rank: nothing moves between ranks"};
  if (wanted == Mode::device_collectives_host)
    return {Mode::device_collectives_host, "--device-collectives host: staged through host memory and MPI"};
  std::string unsure;
  const std::string obstacle = nccl_obstacle(ranks, nccl_built, unsure);
  if (wanted == Mode::device_collectives_nccl) {
    if (!obstacle.empty())
      fail("--device-collectives nccl: {}; give every rank a GPU of its own, or use --device-collectives host (or "
           "auto, which stages the collectives through host memory then)",
           obstacle);
    return {Mode::device_collectives_nccl, "--device-collectives nccl: NCCL on GPU memory" +
                                               (unsure.empty() ? std::string() : " (" + unsure + ")")};
  }
  if (!obstacle.empty()) return {Mode::device_collectives_host, "staged through host memory and MPI: " + obstacle};
  if (!unsure.empty()) return {Mode::device_collectives_host, "staged through host memory and MPI: " + unsure};
  return {Mode::device_collectives_nccl,
          fmt::format("NCCL on GPU memory: each of the {} ranks has a GPU of its own", ranks.size())};
}

}  // namespace dsi
