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
//
// Numerics: products and sums in f32 (FP8: code x block scale in f32, no rounding of the
// weight), the order fixed by the shape (a row's result does not depend on other rows), one
// rounding to the output dtype at the end.
#include <cuda_runtime.h>

#include "backend/cuda/grouped_gemm.h"

namespace dsi::cuda {

struct GroupedGemvParams {
  GroupedGemmParams gemm;         // act_dtype must be bf16 (a); y is written in y_dtype
  DType y_dtype = DType::bf16;    // bf16 or f32
  int max_active_groups = 0;      // upper bound of non-empty groups (<= n_groups); 0: n_groups
};

// Whether the skinny kernel takes this problem: bf16 activations, bf16 or FP8 (e4m3, block
// scales with block_cols a multiple of 16) row-major weights, K and every row stride a whole
// number of 16-byte chunks, 16-byte aligned bases; or k-major bf16 weights (MLA's W_UK) without
// row offsets or SwiGLU, N a multiple of 8. Otherwise use grouped_gemm / cuBLASLt.
bool grouped_gemv_supported(const GroupedGemvParams& p);

// Enqueues the one launch on `stream`; throws dsi::Error if the problem is not supported.
void grouped_gemv(const GroupedGemvParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
