#pragma once
// Grouped GEMM: one launch computes Y_g = A_g W_g^T for every group g (an expert of a MoE
// layer, a head of MLA's W_UK / W_UV), with the groups' row ranges read from device memory,
// so no host round trip sizes the work. Optionally fused with SwiGLU gating:
// Y_g = silu(A_g W_g^T) * (A_g U_g^T) (MATH.md "MLP").
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace dsi::cuda {

// The weights of all groups, one [N, K] matrix W_g each (y = W x), f32, bf16 or FP8 e4m3 with
// block scales (MATH.md "FP8 weights"). Strides are in elements.
struct GroupedWeight {
  const void* data = nullptr;  // group g's matrix starts at element g * group_stride
  DType dtype = DType::bf16;
  int64_t ld = 0;              // row stride of the stored matrix
  int64_t group_stride = 0;
  bool k_major = false;  // false: W_g(n, k) is stored at [n * ld + k]; true: at [k * ld + n]
  // FP8 only. An element at (row, col) of its stored matrix is multiplied by
  //   scale[g * scale_group_stride + ((row + row_offset + g * group_row_step) / block_rows) * scale_ld
  //         + col / block_cols]
  // (stacked experts: each its own scale grid; heads of one kv_b_proj: one grid, group_row_step
  // rows apart).
  const float* scale = nullptr;
  int64_t scale_ld = 0;
  int64_t scale_group_stride = 0;
  int64_t row_offset = 0;
  int64_t group_row_step = 0;
  int block_rows = 128;
  int block_cols = 128;
};

struct GroupedGemmParams {
  // a and y: bf16 (tensor cores: bf16 operands, weights rounded to bf16 after scaling, f32
  // accumulation) or f32 (f32 FMA, weights widened exactly).
  DType act_dtype = DType::bf16;
  int n_groups = 0;
  int64_t n_cols = 0;  // N
  int64_t depth = 0;   // K
  // Group g owns rows [row_offsets[g], row_offsets[g + 1]) of a and y (device, [n_groups + 1],
  // non-decreasing, row_offsets[n_groups] <= n_rows); null: every group owns rows [0, n_rows).
  const int32_t* row_offsets = nullptr;
  int64_t n_rows = 0;
  const void* a = nullptr;  // A_g(m, k) = a[row(m) * a_ld + g * a_group_cols + k]
  int64_t a_ld = 0;
  int64_t a_group_cols = 0;
  void* y = nullptr;  // Y_g(m, n) = y[row(m) * y_ld + g * y_group_cols + n]
  int64_t y_ld = 0;
  int64_t y_group_cols = 0;
  GroupedWeight w;     // [N, K] per group
  GroupedWeight w_up;  // [N, K] per group when data is set: the fused SwiGLU form above
};

// Enqueues the one launch on `stream`; checks the parameters first (dsi::Error on misuse).
void grouped_gemm(const GroupedGemmParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
