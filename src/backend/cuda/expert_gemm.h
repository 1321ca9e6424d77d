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
  // FP8 only: expert e's 128 x 128 block scales, [ceil(n / 128), k / 128] row-major at element
  // e * scale_group_stride (MATH.md "FP8 weights").
  const float* scale = nullptr;
  int64_t scale_group_stride = 0;
};

// bf16 output, f32 accumulation. bf16: x and the weights are bf16. FP8 (W8A8, DeepSeek's
// act_quant + block-scaled GEMM): x holds e4m3 codes with one f32 scale per row and 128
// columns (x_scale, [rows, k / 128] row-major, quantize_fp8's layout) and the weights e4m3
// codes with their block scales; k a multiple of 128. mats[0..n_mats) share x and its grouping
// (gate and up: 2 matrices, 2 x n_experts groups in one launch).
struct ExpertGemmParams {
  bool fp8 = false;
  int n_experts = 0;
  const int32_t* row_offsets = nullptr;  // device, [n_experts + 1], non-decreasing from 0
  const void* x = nullptr;               // [rows, k], contiguous
  const float* x_scale = nullptr;        // FP8 only
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
size_t expert_gemm_workspace_bytes(bool fp8, int n_experts, int n_mats, int sm_count);
// Enqueues the setup kernel and the grouped GEMM on `stream`; throws dsi::Error on misuse.
void expert_gemm(const ExpertGemmParams& p, void* workspace, size_t workspace_bytes, int sm_count,
                 cudaStream_t stream);

}  // namespace dsi::cuda
