// Checked host wrappers of the grouped GEMM (grouped_gemm.cu) and its skinny form (grouped_gemv.cu).
#include <cstdint>

#include "backend/cuda/check.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/grouped_gemv.h"
#include "core/error.h"

namespace dsi::cuda {

namespace {

void check_weight(const GroupedWeight& w, const char* name) {
  if (w.data == nullptr) fail("cuda::grouped_gemm: {} has no data", name);
  if (w.dtype != DType::f32 && w.dtype != DType::bf16 && w.dtype != DType::f8_e4m3)
    fail("cuda::grouped_gemm: {} is {}, expected f32, bf16 or f8_e4m3", name, dtype_name(w.dtype));
  if (w.dtype == DType::f8_e4m3 && (w.scale == nullptr || w.block_rows < 1 || w.block_cols < 1))
    fail("cuda::grouped_gemm: FP8 {} needs its block scales", name);
  // The kernels read one scale per stored row and tile: a tile's 64 (or fewer) columns must
  // stay inside one scale block.
  if (w.dtype == DType::f8_e4m3 && w.block_cols % 64 != 0)
    fail("cuda::grouped_gemm: FP8 {} has {}-column scale blocks; the kernels take multiples of 64", name,
         w.block_cols);
}

bool chunk_aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether the skinny kernel reads w: row-major, whole 16-byte chunks, FP8 scale blocks holding
// whole chunks.
bool gemv_weight_ok(const GroupedWeight& w, int64_t depth) {
  if (w.data == nullptr || w.k_major || !chunk_aligned(w.data)) return false;
  if (w.dtype == DType::bf16) return w.ld % 8 == 0 && w.group_stride % 8 == 0 && depth % 8 == 0;
  if (w.dtype != DType::f8_e4m3) return false;
  return w.scale != nullptr && w.block_rows >= 1 && w.block_cols % 16 == 0 && w.ld % 16 == 0 &&
         w.group_stride % 16 == 0 && depth % 16 == 0;
}

}  // namespace

bool grouped_gemv_supported(const GroupedGemvParams& q) {
  const GroupedGemmParams& p = q.gemm;
  if (p.act_dtype != DType::bf16 || (q.y_dtype != DType::bf16 && q.y_dtype != DType::f32)) return false;
  if (p.depth < 1 || p.depth > (int64_t(1) << 30) || p.n_cols < 1 || p.n_groups < 1) return false;
  if (p.w.k_major) {  // bf16 only, every group owning all rows, columns in whole chunks
    return p.w.dtype == DType::bf16 && !p.w_up.data && !p.row_offsets && p.w.data && chunk_aligned(p.w.data) &&
           p.n_cols % 8 == 0 && p.w.ld % 8 == 0 && p.w.group_stride % 8 == 0 && p.a != nullptr;
  }
  if (!gemv_weight_ok(p.w, p.depth)) return false;
  if (p.w_up.data && (!gemv_weight_ok(p.w_up, p.depth) || p.w_up.dtype != p.w.dtype ||
                      p.w_up.block_cols != p.w.block_cols))
    return false;
  return chunk_aligned(p.a) && p.a_ld % 8 == 0 && p.a_group_cols % 8 == 0;
}

void grouped_gemv(const GroupedGemvParams& q, cudaStream_t stream) {
  const GroupedGemmParams& p = q.gemm;
  if (!grouped_gemv_supported(q))
    fail("cuda::grouped_gemv: not a skinny problem it takes (activations {}, weight {}, K = {}, strides a {} w {})",
         dtype_name(p.act_dtype), dtype_name(p.w.dtype), p.depth, p.a_ld, p.w.ld);
  if (p.n_rows == 0) return;
  if (!p.a || !p.y) fail("cuda::grouped_gemv: a or y has no data");
  if (q.max_active_groups < 0 || q.max_active_groups > p.n_groups)
    fail("cuda::grouped_gemv: {} active groups of {}", q.max_active_groups, p.n_groups);
  if (p.n_cols > int64_t(1) << 31 || p.n_groups > 65535)
    fail("cuda::grouped_gemv: {} columns in {} groups exceed one launch", p.n_cols, p.n_groups);
  DSI_CUDA_CHECK(launch_grouped_gemv(q, stream));
  DSI_CUDA_CHECK_LAUNCH(stream, "grouped_gemv");
}

void grouped_gemm(const GroupedGemmParams& p, cudaStream_t stream) {
  if (p.act_dtype != DType::f32 && p.act_dtype != DType::bf16)
    fail("cuda::grouped_gemm: activations are {}, expected f32 or bf16", dtype_name(p.act_dtype));
  if (p.n_groups < 1 || p.n_cols < 1 || p.depth < 1 || p.n_rows < 0)
    fail("cuda::grouped_gemm: bad sizes: {} groups, N = {}, K = {}, {} rows", p.n_groups, p.n_cols, p.depth,
         p.n_rows);
  check_weight(p.w, "w");
  if (p.w_up.data) check_weight(p.w_up, "w_up");
  if (p.n_rows == 0) return;
  if (!p.a || !p.y) fail("cuda::grouped_gemm: a or y has no data");
  const int64_t row_tiles = (p.n_rows + 63) / 64;
  const int64_t grid_x = p.row_offsets ? row_tiles + p.n_groups : row_tiles * p.n_groups;
  if (grid_x > int64_t(1) << 31 || (p.n_cols + 63) / 64 > 65535)
    fail("cuda::grouped_gemm: {} rows x {} columns in {} groups exceed one launch", p.n_rows, p.n_cols, p.n_groups);
  DSI_CUDA_CHECK(launch_grouped_gemm(p, stream));
  DSI_CUDA_CHECK_LAUNCH(stream, "grouped_gemm");
}

}  // namespace dsi::cuda
