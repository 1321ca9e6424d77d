#include "engine/parallel_flags.h"

namespace dsi {

void add_parallel_flags(CLI::App* cmd, ParallelOptions& o) {
  const std::string group = "Parallelism (launch with mpirun -np N; see docs/multi-rank.md)";
  cmd->add_option("--tensor-parallel-size", o.tensor_parallel_size,
                  "ranks that split attention heads, the dense MLP and the shared experts (also -tp)")
      ->group(group)
      ->capture_default_str();
  cmd->add_option("--expert-parallel-size", o.expert_parallel_size,
                  "expert groups the routed experts are split across (each owns n_routed_experts / E); must divide "
                  "the number of ranks")
      ->group(group)
      ->capture_default_str();
  cmd->add_option("--data-parallel-size", o.data_parallel_size,
                  "data-parallel attention (also -dp): D ranks, each with its own attention, KV cache, dense layers "
                  "and shared experts running its own sequences (rank 0 places each request on the rank with the "
                  "least KV in use); the routed experts split over all ranks, tokens sent to their experts by "
                  "all-to-all. Launch with mpirun -np D; --tensor-parallel-size must be 1 with it")
      ->group(group)
      ->capture_default_str();
  cmd->add_flag("--enable-expert-parallel", o.enable_expert_parallel,
                "expert parallelism over all ranks (vLLM's meaning): --expert-parallel-size = number of ranks")
      ->group(group);
  cmd->add_option("--collective-timeout", o.collective_timeout_s,
                  "seconds a rank waits in one collective of a step for its peers before failing (a dead or hung "
                  "rank); with serve's --failure-exit-delay 5 a hung rank ends the job within 30 s. Raise it for "
                  "CPU runs of large models, where one rank's share of a long prompt can take longer")
      ->group(group)
      ->capture_default_str();
  cmd->add_option_function<std::string>(
         "--device-collectives",
         [&o](const std::string& text) { o.device_collectives = parse_device_collectives(text); },
         "what carries the model's all-reduces and expert all-to-alls between GPU ranks: nccl (GPU to GPU; every "
         "rank needs a GPU of its own), host (staged through host memory and MPI, as on the CPU and for ranks "
         "sharing a GPU), or auto (nccl where every rank has its own GPU and the build has NCCL, else host; the "
         "choice is logged)")
      ->check(CLI::IsMember({"auto", "nccl", "host"}))
      ->group(group)
      ->default_str("auto");
}

std::vector<std::string> expand_short_parallel_flags(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (auto& a : args) {
    if (a == "-tp") a = "--tensor-parallel-size";
    else if (a.rfind("-tp=", 0) == 0) a = "--tensor-parallel-size=" + a.substr(4);
    else if (a == "-dp") a = "--data-parallel-size";
    else if (a.rfind("-dp=", 0) == 0) a = "--data-parallel-size=" + a.substr(4);
  }
  return args;
}

}  // namespace dsi
