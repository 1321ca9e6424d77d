#pragma once
// Skinny grouped GEMM for decode: the same problem as grouped_gemm.h (Y_g = A_g W_g^T per
// group, optionally fused with SwiGLU), shaped for few rows per group, where the product is
// bound by reading the weights once. A CTA of four warps owns a few output columns (weight
// rows) of one non-empty group, each warp a few of them along the whole depth K; each lane
// streams 16-byte chunks of its warp's weight rows (8 bf16 or 16 FP8 codes), and the warp's
// sums meet in one reduce-scatter over its lanes.
// The group's activation rows are taken 8 at a time, so a group with more rows re-reads its
// weight rows from L1/L2, not from HBM. Only non-empty groups get CTAs (the launch is sized by
// an upper bound of them, the CTA finds its group from the device row offsets), so a decode step
// that routes 6 tokens to 6 of 64 experts reads 6 experts' weights, with no host round trip.
// A dense linear layer is the one-group case (row_offsets null).
// Two kernels do this: CUDA-core FMA (grouped_gemv.cu) and tensor-core MMA (grouped_gemv_mma.cu,
// the weights as the MMA's A operand, up to 8 activation rows per instruction), which reads the
// same bytes with far fewer instructions per row; the FMA kernel remains for one row per
// group (where it was faster), the k-major form, and depths that are not whole 64-byte chunks.
//
// Numerics: products and sums in f32 (FP8: code x block scale in f32, no rounding of the
// weight), the order fixed by the shape (a row's result does not depend on other rows), one
// rounding to the output dtype at the end.
#include <cuda_runtime.h>

#include "backend/cuda/grouped_gemm.h"

namespace dsi::cuda {

// Which kernel decode-shaped products take (DSINFER_CUDA_SKINNY=0|fma|mma|mma-all, default mma):
// none (cuBLASLt and the tiled grouped GEMM), the CUDA-core kernel, the tensor-core kernel past
// kFmaRowsPerGroup rows a group (the CUDA-core one below), or the tensor-core kernel at any rows.
enum class SkinnyKernel { none, cuda_cores, tensor_cores, tensor_cores_always };

// Up to how many rows each decode-shaped product takes the skinny kernels, from the H200 op
// timings (V2-Lite, docs/design/cuda_notes.md): at 16 rows a linear layer took 11.2 us on the
// tensor-core kernel against cuBLASLt's 10.1 (51 on the CUDA-core one), MLA's expand under 16 us
// against the tiled kernel's 59 (75 at 64 rows, where two 32-row passes over 2 MB of weights
// should still win); the routed experts gained up to 16 rows per expert.
struct SkinnyLimits {
  int64_t linear_rows = 0;  // dense linear layers
  int64_t head_rows = 0;    // MLA's row-major per-head expand
  int64_t kmajor_rows = 0;  // MLA's k-major absorb (the CUDA-core kernel only)
  int64_t expert_rows = 0;  // rows per routed expert, on average
};
inline SkinnyLimits skinny_limits(SkinnyKernel k) {
  switch (k) {
    case SkinnyKernel::tensor_cores:
    case SkinnyKernel::tensor_cores_always: return {8, 64, 4, 16};
    case SkinnyKernel::cuda_cores: return {4, 4, 4, 8};
    default: return {};
  }
}

// At one row a group the CUDA-core kernel is faster (V2-Lite batch 1: experts 38.8 against 45.2 us
// a layer; linear 9.1 against 8.9 us a call, even); from 1.5 rows the tensor-core kernel with one
// warp a tile wins (batch 16: experts 313 -> 243 us a layer; docs/design/cuda_notes.md, session 6).
inline constexpr int64_t kFmaRowsPerGroup = 1;

struct GroupedGemvParams {
  GroupedGemmParams gemm;         // act_dtype must be bf16 (a); y is written in y_dtype
  DType y_dtype = DType::bf16;    // bf16 or f32
  int max_active_groups = 0;      // upper bound of non-empty groups (<= n_groups); 0: n_groups
  // Rows spread over the groups by routing (the routed experts): a group's count is about
  // Poisson around the mean, so the MMA kernel sizes its passes for a group above the mean.
  bool routed_rows = false;
  // The MMA kernel where it takes the problem and a group has more than fma_rows_per_group rows
  // on average (kFmaRowsPerGroup unless DSINFER_CUDA_SKINNY=mma-all).
  bool tensor_cores = true;
  int64_t fma_rows_per_group = kFmaRowsPerGroup;
};

// The kernel choice of `k` as GroupedGemvParams fields.
inline void pick_skinny_kernel(GroupedGemvParams& q, SkinnyKernel k) {
  q.tensor_cores = k == SkinnyKernel::tensor_cores || k == SkinnyKernel::tensor_cores_always;
  q.fma_rows_per_group = k == SkinnyKernel::tensor_cores_always ? 0 : kFmaRowsPerGroup;
}

// The groups a launch serves: the bound of non-empty ones, or every group.
inline int active_groups(const GroupedGemvParams& q) {
  const GroupedGemmParams& p = q.gemm;
  return p.row_offsets && q.max_active_groups > 0 ? q.max_active_groups : p.n_groups;
}

// Whether the skinny kernel takes this problem: bf16 activations, bf16 or FP8 (e4m3, block
// scales with block_cols a multiple of 16) row-major weights, K and every row stride a whole
// number of 16-byte chunks, 16-byte aligned bases; or k-major bf16 weights (MLA's W_UK) without
// row offsets or SwiGLU, N a multiple of 8. Otherwise use grouped_gemm / cuBLASLt.
bool grouped_gemv_supported(const GroupedGemvParams& p);

// Enqueues the one launch on `stream`; throws dsi::Error if the problem is not supported.
void grouped_gemv(const GroupedGemvParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
