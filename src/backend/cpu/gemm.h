#pragma once
// Linear layers of the CPU backend: float32 activations times a weight kept in its checkpoint
// dtype (F32, BF16, F16, or F8_E4M3 with block scales), widened to float32 tile by tile as the
// kernels go, so a memory-mapped checkpoint is used in place. Results are float32 multiply-adds
// of x and the exactly widened weight (fp8: code x block scale, rounded once; NaN codes 0x7f
// and 0xff are NaN), accumulated in float32; they do not depend on the number of threads.
//
// Threads: every call runs one OpenMP parallel region with omp_get_max_threads() threads (set
// it with dsi::set_num_threads). Any thread may call; calls running at the same time must not
// write the same outputs. Inputs are only read, y is only written. Bad shapes, dtypes or
// overlapping operands throw dsi::Error before any output is touched.
#include <span>
#include <string_view>

#include "core/tensor.h"

namespace dsi::cpu {

// y = x W^T, the usual linear layer.
//   x: f32 [m, k] (any row stride >= k)
//   w: [n, k] F32, BF16, F16, or F8_E4M3 with scale f32 [ceil((row_offset + n) / block_rows),
//      ceil(k / block_cols)] (a Weight may be a row slice of a larger quantised matrix)
//   y: f32 [m, n] (any row stride >= n), must not overlap x or w
void linear(const Tensor& x, const Weight& w, Tensor y);

// y = x W, the weight applied from the other side (MLA absorbs a row slice of kv_b_proj into
// the query this way: q_latent = q_nope . W_UK).
//   x: f32 [m, n], w: [n, k] (dtypes and scales as for linear), y: f32 [m, k]
void linear_transposed(const Tensor& x, const Weight& w, Tensor y);

// One product of linear_batch: y = x W^T (or y = x W when transposed).
struct GemmProblem {
  Tensor x;  // f32 [m, k]   (transposed: [m, n])
  Weight w;  // [n, k]
  Tensor y;  // f32 [m, n]   (transposed: [m, k])
  bool transposed = false;
};

// Many independent products (the routed experts of one MoE layer, each with its own tokens) in
// ONE parallel region whose work items are (problem, output tile), so many small products do
// not each pay a thread fork and join. Problems with m = 0 are skipped. All problems are
// checked before any is computed; the outputs must not overlap each other or any input.
void linear_batch(std::span<const GemmProblem> problems);

// Which kernels this build uses: "avx2" or "portable".
std::string_view gemm_isa();

}  // namespace dsi::cpu
