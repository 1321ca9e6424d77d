#include "plan/calibration.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/mapped_file.h"

namespace dsi::plan {

namespace {

// The one list of calibration keys, so that parsing and printing cannot drift apart.
template <class Self, class Fn>
void for_each_field(Self& c, Fn&& fn) {
  fn("cuda_context_mib", c.cuda_context_mib);
  fn("nccl_base_mib", c.nccl_base_mib);
  fn("nccl_per_peer_mib", c.nccl_per_peer_mib);
  fn("cuda_graphs_mib", c.cuda_graphs_mib);
  fn("workspace_mib", c.workspace_mib);
  fn("activation_factor", c.activation_factor);
  fn("memory_utilization", c.memory_utilization);
  fn("hbm_efficiency", c.hbm_efficiency);
  fn("link_efficiency", c.link_efficiency);
  fn("compute_efficiency", c.compute_efficiency);
  fn("inter_node_gbs", c.inter_node_gbs);
  fn("collective_latency_us", c.collective_latency_us);
  fn("network_latency_us", c.network_latency_us);
  fn("kernel_overhead_us_per_layer", c.kernel_overhead_us_per_layer);
  fn("cpu_memory_per_node_gib", c.cpu_memory_per_node_gib);
}

}  // namespace

Calibration Calibration::from_json(const Json& j, std::string_view what) {
  if (!j.is_object()) fail("{}: expected a JSON object of calibration constants", what);
  Calibration c;
  std::vector<std::string> known;
  for_each_field(c, [&](const char* key, double& field) {
    known.emplace_back(key);
    if (auto v = json_get_opt<double>(j, key, what)) {
      if (!(*v >= 0)) fail("{}: {} = {} must not be negative", what, key, *v);
      field = *v;
    }
  });
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key().rfind("_", 0) == 0) continue;  // "_comment" and the like
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      fail("{}: unknown calibration key '{}' (known: {})", what, it.key(), fmt::join(known, ", "));
  }
  if (!(c.memory_utilization > 0 && c.memory_utilization <= 1))
    fail("{}: memory_utilization = {} must be in (0, 1]", what, c.memory_utilization);
  for (auto [key, v] : {std::pair{"hbm_efficiency", c.hbm_efficiency}, std::pair{"link_efficiency", c.link_efficiency},
                        std::pair{"compute_efficiency", c.compute_efficiency}})
    if (!(v > 0 && v <= 1)) fail("{}: {} = {} must be in (0, 1]", what, key, v);
  if (!(c.activation_factor >= 1)) fail("{}: activation_factor = {} must be >= 1", what, c.activation_factor);
  if (!(c.inter_node_gbs > 0)) fail("{}: inter_node_gbs must be positive", what);
  return c;
}

Calibration Calibration::from_file(const std::string& path) {
  return from_json(parse_json(read_text_file(path), path), path);
}

Json Calibration::to_json() const {
  Json j = Json::object();
  for_each_field(*this, [&](const char* key, const double& field) { j[key] = field; });
  return j;
}

uint64_t Calibration::fixed_overhead_bytes(int n_peers) const {
  double mib = cuda_context_mib + cuda_graphs_mib + workspace_mib;
  if (n_peers > 0) mib += nccl_base_mib + nccl_per_peer_mib * n_peers;
  return uint64_t(mib * double(1 << 20));
}

}  // namespace dsi::plan
