#pragma once
// The routed experts' products of a prefill-sized MoE step as one CUTLASS grouped GEMM launch
// per product (Hopper: TMA loads, warp-specialised wgmma, a persistent tile scheduler over
// all groups): y_e = x_e W_e^T for every expert e, where x_e are the rows [off[e], off[e+1])
// of the expert-sorted activations. The groups' sizes come from the device (the dispatch's
// offsets): no host round trip, no launch per expert. Built only where CMake found CUTLASS's
// headers (DSINFER_HAVE_CUTLASS); the per-expert cuBLASLt products remain the fallback.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace dsi::cuda {

// One weight stack of a product: expert e's [n, k] row-major matrix (ld k) at element
// e * group_stride of w; its output rows at y (row-major, ld n, rows as x's).
struct ExpertGemmMatrix {
  const void* w = nullptr;
  int64_t group_stride = 0;
  void* y = nullptr;
};

// bf16 operands and output, f32 accumulation. mats[0..n_mats) share x and its grouping (gate
// and up: 2 matrices, 2 x n_experts groups in one launch).
struct ExpertGemmParams {
  int n_experts = 0;
  const int32_t* row_offsets = nullptr;  // device, [n_experts + 1], non-decreasing from 0
  const void* x = nullptr;               // [rows, k], contiguous
  int64_t n = 0;
  int64_t k = 0;
  ExpertGemmMatrix mats[2];
  int n_mats = 1;
};

// Whether this build has the grouped kernel.
bool expert_gemm_built();
// Whether it takes these sizes (16-byte aligned rows and pointers).
bool expert_gemm_takes(const ExpertGemmParams& p);
// Device scratch the launch needs (problem sizes, pointer and stride arrays, CUTLASS's own
// workspace) for this many experts and matrices on this many SMs.
size_t expert_gemm_workspace_bytes(int n_experts, int n_mats, int sm_count);
// Enqueues the setup kernel and the grouped GEMM on `stream`; throws dsi::Error on misuse.
void expert_gemm(const ExpertGemmParams& p, void* workspace, size_t workspace_bytes, int sm_count,
                 cudaStream_t stream);

}  // namespace dsi::cuda
