#pragma once
// Every constant of the planner that is an estimate rather than a formula, in one place, with
// its default and why (docs/plan.md "Calibration"). `--calibration FILE` overrides any of them
// from a JSON object with the same keys, so they can be fitted to memory measured on real GPUs.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json.h"

namespace dsi::plan {

struct Calibration {
  // Fixed per-GPU memory outside weights, KV cache and activations, MiB.
  double cuda_context_mib = 600;     // CUDA context + cuBLAS: 595 MiB measured on H200 (CUDA 13, driver 580)
  double nccl_base_mib = 256;        // NCCL communicator setup, when a GPU talks to others
  double nccl_per_peer_mib = 32;     // NCCL channel buffers: NCCL_BUFFSIZE (4 MiB) x ~8 channels per peer
  double cuda_graphs_mib = 1024;     // captured decode graphs (one per batch-size bucket) and their pools
  double workspace_mib = 256;        // GEMM / attention kernel workspaces, sampler buffers
  // Activation live set of one step (formula in activation_bytes) times this: temporaries the
  // formula does not name, and allocator fragmentation.
  double activation_factor = 1.5;
  double memory_utilization = 0.90;  // fraction of GPU memory the engine may use (vLLM's default)
  // Achieved fraction of datasheet peaks, for the speed estimates.
  double hbm_efficiency = 0.8;       // streaming reads reach ~80% of HBM peak
  double link_efficiency = 0.7;      // NCCL bus bandwidth vs link datasheet
  double compute_efficiency = 0.5;   // tensor-core utilisation of decode GEMMs
  double inter_node_gbs = 50;        // per-GPU network bandwidth between nodes (400 Gb/s NIC per GPU)
  double collective_latency_us = 10;    // one small NCCL collective inside a node
  double network_latency_us = 25;       // one small collective across nodes
  double kernel_overhead_us_per_layer = 20;  // launch gaps and tiny kernels of one layer in a decode step
  double cpu_memory_per_node_gib = 1024;  // host memory for optimizer / parameter offload

  static Calibration from_json(const Json& j, std::string_view what);  // unknown keys are errors
  static Calibration from_file(const std::string& path);
  Json to_json() const;

  uint64_t fixed_overhead_bytes(int n_peers) const;  // context + NCCL + graphs + workspace
};

}  // namespace dsi::plan
