#include "topo/commands.h"

#include <cstdio>
#include <memory>

#include "topo/nvml.h"

namespace dsi {

namespace {

struct TopoOptions {
  bool json = false;
  int tp = 0, ep = 0;  // 0: not given
  std::string library = topo::kNvmlLibrary;
};

void run_topo(const TopoOptions& o) {
  topo::Topology t = topo::read_topology(o.library);
  std::unique_ptr<topo::Placement> placement;
  std::vector<std::string> warnings;
  if (t.available) {
    // Without --tp/--ep: every GPU in one TP group, the layout one node serves by default.
    const int n = int(t.gpus.size());
    const int tp = o.tp > 0 ? o.tp : (o.ep > 0 ? 1 : n), ep = o.ep > 0 ? o.ep : (o.tp > 0 ? 1 : n);
    placement = std::make_unique<topo::Placement>(topo::place_ranks(t, tp, ep));
    warnings = topo::topology_warnings(t, *placement);
  }
  // No GPU is an answer, not an error: exit 0 with the reason.
  std::string out = o.json ? topo::topology_json(t, placement.get(), warnings).dump(2) + "\n"
                           : topo::topology_text(t, placement.get(), warnings);
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_topo_commands(CLI::App& app) {
  auto o = std::make_shared<TopoOptions>();
  CLI::App* sub = app.add_subcommand(
      "topo",
      "The GPUs (model, memory, compute capability, FP8, clocks), their links as nvidia-smi topo -m shows them, NUMA "
      "and CPU affinity, warnings (mixed models, TP over PCIe or across sockets), and where each rank of --tp/--ep "
      "should run. Reads NVML at run time; without a driver it says so and exits 0");
  sub->add_flag("--json", o->json, "Print JSON instead of tables");
  sub->add_option("--tp", o->tp, "Tensor-parallel size to place (default: all GPUs in one TP group)");
  sub->add_option("--ep", o->ep, "Expert-parallel size to place (ranks = max(tp, ep))");
  sub->add_option("--nvml-library", o->library, "The NVML library to load")->capture_default_str();
  sub->callback([o] { run_topo(*o); });
}

}  // namespace dsi
