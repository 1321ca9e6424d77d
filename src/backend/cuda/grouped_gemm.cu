// Grouped GEMM kernels. A CTA computes one 64 x 64 tile of one group's output; which group and
// row tile follow from the device row offsets (each group's rows are cut into whole tiles, so
// a tile never mixes groups). Weights are widened (FP8 times its block scale) while they are
// staged in shared memory. bf16 activations use the tensor cores through WMMA; f32
// activations use plain FMA tiles, so --dtype float32 stays float32 end to end.
#include <cuda_bf16.h>
#include <mma.h>

#include <cmath>
#include <type_traits>

#include "backend/cuda/device_types.cuh"
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

constexpr int kTileRows = 64;
constexpr int kTileCols = 64;

struct TileCoords {
  int group;        // -1: this CTA has no tile
  int64_t row0;     // first row of a / y of the tile
  int n_rows;       // rows of the tile in its group (<= kTileRows)
};

// Maps blockIdx.x to (group, row tile). Run by one full warp; the result lands in `out`.
__device__ void locate_tile(const GroupedGemmParams& p, int lane, TileCoords* out) {
  const int tile = int(blockIdx.x);
  if (p.row_offsets == nullptr) {
    const int tiles_per_group = int((p.n_rows + kTileRows - 1) / kTileRows);
    if (lane == 0) {
      const int g = tiles_per_group > 0 ? tile / tiles_per_group : p.n_groups;
      const int64_t row0 = int64_t(tile - g * tiles_per_group) * kTileRows;
      *out = g < p.n_groups ? TileCoords{g, row0, int(min(int64_t(kTileRows), p.n_rows - row0))}
                            : TileCoords{-1, 0, 0};
    }
    return;
  }
  int tiles_before = 0;  // tiles of the groups before this chunk of 32
  for (int base = 0; base < p.n_groups; base += 32) {
    const int g = base + lane;
    int rows = 0;
    if (g < p.n_groups) rows = p.row_offsets[g + 1] - p.row_offsets[g];
    const int tiles = (rows + kTileRows - 1) / kTileRows;
    int incl = tiles;  // inclusive scan over the warp
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
    const int first = tiles_before + incl - tiles;
    const bool mine = g < p.n_groups && tile >= first && tile < first + tiles;
    const unsigned hit = __ballot_sync(0xffffffffu, mine);
    if (mine) {
      const int64_t in_group = int64_t(tile - first) * kTileRows;
      *out = TileCoords{g, p.row_offsets[g] + in_group, int(min(int64_t(kTileRows), int64_t(rows) - in_group))};
    }
    if (hit) return;
    tiles_before += __shfl_sync(0xffffffffu, incl, 31);
  }
  if (lane == 0) *out = TileCoords{-1, 0, 0};
}

// Which operand loads may take 4 contiguous elements at once (rows and bases aligned to 4
// elements); set per launch.
struct VecFlags {
  bool a;
  bool w;
  bool w_up;
};

// Four contiguous elements of dtype t at element offset `off` (aligned to 4 elements).
__device__ __forceinline__ void load4(const void* p, DType t, int64_t off, float v[4]) {
  if (t == DType::f8_e4m3) {
    const uint32_t word = *reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(p) + off);
#pragma unroll
    for (int e = 0; e < 4; ++e) v[e] = fp8_e4m3_to_f32(uint8_t(word >> (8 * e)));
  } else if (t == DType::bf16) {
    const uint2 word = *reinterpret_cast<const uint2*>(static_cast<const __nv_bfloat16*>(p) + off);
    v[0] = __uint_as_float(word.x << 16);
    v[1] = __uint_as_float(word.x & 0xffff0000u);
    v[2] = __uint_as_float(word.y << 16);
    v[3] = __uint_as_float(word.y & 0xffff0000u);
  } else {
    const float4 f = *reinterpret_cast<const float4*>(static_cast<const float*>(p) + off);
    v[0] = f.x;
    v[1] = f.y;
    v[2] = f.z;
    v[3] = f.w;
  }
}

// FP8 block scales of one weight tile, one per stored row the tile touches: a tile's other
// dimension stays inside one scale block (block_cols % 64 == 0, checked by the host wrapper),
// so the kernels divide once per row and tile, not once per element.
template <int kDepth>
__device__ void fill_tile_scale(const GroupedWeight& w, int g, int64_t n0, int64_t k0, int64_t N, int64_t K,
                                float* tile_scale, int tid, int n_threads) {
  const int n_entries = w.k_major ? kDepth : kTileCols;
  for (int i = tid; i < n_entries; i += n_threads) {
    const int64_t row = w.k_major ? k0 + i : n0 + i, col = w.k_major ? n0 : k0;
    const int64_t scale_row = (row + w.row_offset + int64_t(g) * w.group_row_step) / w.block_rows;
    tile_scale[i] = row < (w.k_major ? K : N)
                        ? w.scale[int64_t(g) * w.scale_group_stride + scale_row * w.scale_ld + col / w.block_cols]
                        : 0.0f;
  }
}

// Stages W_g's [kTileCols, kDepth] tile at (n0, k0) as float32 through store(n, k, value),
// zeros outside [N, K); FP8 values times their block scale from tile_scale.
template <int kDepth, class Store>
__device__ __forceinline__ void load_weight_tile(const GroupedWeight& w, int g, int64_t n0, int64_t k0, int64_t N,
                                                 int64_t K, const float* tile_scale, bool vec4, int tid,
                                                 int n_threads, Store store) {
  const bool fp8 = w.dtype == DType::f8_e4m3;
  const int64_t base = int64_t(g) * w.group_stride;
  if (!w.k_major) {  // rows are n, contiguous along k: four k at a time
    constexpr int kQuads = kDepth / 4;
    for (int idx = tid; idx < kTileCols * kQuads; idx += n_threads) {
      const int n = idx / kQuads, k = (idx % kQuads) * 4;
      const int64_t row = n0 + n, col = k0 + k;
      float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (row < N) {
        const int64_t off = base + row * w.ld + col;
        if (vec4 && col + 3 < K) {
          load4(w.data, w.dtype, off, v);
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (col + e < K) v[e] = load_any(w.data, w.dtype, off + e);
        }
        if (fp8) {
          const float sc = tile_scale[n];
#pragma unroll
          for (int e = 0; e < 4; ++e) v[e] *= sc;
        }
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) store(n, k + e, v[e]);
    }
  } else {  // rows are k, contiguous along n: consecutive threads walk n
    for (int idx = tid; idx < kTileCols * kDepth; idx += n_threads) {
      const int n = idx % kTileCols, k = idx / kTileCols;
      const int64_t row = k0 + k, col = n0 + n;
      float v = 0.0f;
      if (row < K && col < N) {
        v = load_any(w.data, w.dtype, base + row * w.ld + col);
        if (fp8) v *= tile_scale[k];
      }
      store(n, k, v);
    }
  }
}

// Four contiguous activations of row `row_ptr` from column col (zeros past K).
template <class T>
__device__ __forceinline__ void load_act4(const T* row_ptr, int64_t col, int64_t K, bool vec4, float v[4]) {
  if (vec4 && col + 3 < K) {
    load4(row_ptr, std::is_same_v<T, float> ? DType::f32 : DType::bf16, col, v);
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e) v[e] = col + e < K ? to_f32(row_ptr[col + e]) : 0.0f;
  }
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// ---- bf16: WMMA 16x16x16, four warps of 32 x 32 each.
constexpr int kDepthBf16 = 32;
constexpr int kPadBf16 = 8;  // keeps WMMA's 32-byte alignment and spreads the banks

template <bool kDual>
__global__ void __launch_bounds__(128) grouped_gemm_bf16_kernel(GroupedGemmParams p, VecFlags vec) {
  detail::pdl_begin();
  using namespace nvcuda;
  constexpr int kLd = kDepthBf16 + kPadBf16;
  __shared__ alignas(32) __nv_bfloat16 a_tile[kTileRows][kLd];
  __shared__ alignas(32) __nv_bfloat16 w_tile[kDual ? 2 : 1][kTileCols][kLd];
  __shared__ alignas(32) float c_tile[kTileRows][kTileCols + 4];
  __shared__ float tile_scale[2][kTileCols];
  __shared__ TileCoords tc;
  const int tid = int(threadIdx.x), warp = tid >> 5;
  if (warp == 0) locate_tile(p, tid & 31, &tc);
  __syncthreads();
  const TileCoords t = tc;
  if (t.group < 0) return;
  const int g = t.group;
  const int64_t n0 = int64_t(blockIdx.y) * kTileCols, N = p.n_cols, K = p.depth;
  const auto* a = static_cast<const __nv_bfloat16*>(p.a) + int64_t(g) * p.a_group_cols;

  const int wm = warp / 2, wn = warp % 2;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2], acc_up[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::fill_fragment(acc[i][j], 0.0f);
      if (kDual) wmma::fill_fragment(acc_up[i][j], 0.0f);
    }

  const bool fp8 = p.w.dtype == DType::f8_e4m3 || (kDual && p.w_up.dtype == DType::f8_e4m3);
  for (int64_t k0 = 0; k0 < K; k0 += kDepthBf16) {
    if (fp8) {
      if (p.w.dtype == DType::f8_e4m3) fill_tile_scale<kDepthBf16>(p.w, g, n0, k0, N, K, tile_scale[0], tid, 128);
      if (kDual && p.w_up.dtype == DType::f8_e4m3)
        fill_tile_scale<kDepthBf16>(p.w_up, g, n0, k0, N, K, tile_scale[1], tid, 128);
      __syncthreads();
    }
    for (int idx = tid; idx < kTileRows * kDepthBf16 / 4; idx += 128) {
      const int m = idx / (kDepthBf16 / 4), k = (idx % (kDepthBf16 / 4)) * 4;
      float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (m < t.n_rows) load_act4(a + (t.row0 + m) * p.a_ld, k0 + k, K, vec.a, v);
#pragma unroll
      for (int e = 0; e < 4; ++e) a_tile[m][k + e] = __float2bfloat16_rn(v[e]);
    }
    load_weight_tile<kDepthBf16>(p.w, g, n0, k0, N, K, tile_scale[0], vec.w, tid, 128,
                                 [&](int n, int k, float v) { w_tile[0][n][k] = __float2bfloat16_rn(v); });
    if (kDual)
      load_weight_tile<kDepthBf16>(p.w_up, g, n0, k0, N, K, tile_scale[1], vec.w_up, tid, 128,
                                   [&](int n, int k, float v) { w_tile[kDual ? 1 : 0][n][k] = __float2bfloat16_rn(v); });
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kDepthBf16; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> af[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bf[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(af[i], &a_tile[wm * 32 + i * 16][kk], kLd);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(bf[j], &w_tile[0][wn * 32 + j * 16][kk], kLd);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], af[i], bf[j], acc[i][j]);
      if (kDual) {
#pragma unroll
        for (int j = 0; j < 2; ++j)
          wmma::load_matrix_sync(bf[j], &w_tile[kDual ? 1 : 0][wn * 32 + j * 16][kk], kLd);
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j) wmma::mma_sync(acc_up[i][j], af[i], bf[j], acc_up[i][j]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      if (kDual) {
        // Gate and up fragments of one shape hold the same elements in the same places.
#pragma unroll
        for (int e = 0; e < acc[i][j].num_elements; ++e) acc[i][j].x[e] = silu(acc[i][j].x[e]) * acc_up[i][j].x[e];
      }
      wmma::store_matrix_sync(&c_tile[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], kTileCols + 4,
                              wmma::mem_row_major);
    }
  __syncthreads();
  auto* y = static_cast<__nv_bfloat16*>(p.y) + int64_t(g) * p.y_group_cols;
  for (int idx = tid; idx < kTileRows * kTileCols; idx += 128) {
    const int m = idx / kTileCols, n = idx % kTileCols;
    if (m < t.n_rows && n0 + n < N) y[(t.row0 + m) * p.y_ld + n0 + n] = __float2bfloat16_rn(c_tile[m][n]);
  }
}

// ---- f32: 256 threads, each a 4 x 4 block of the tile.
constexpr int kDepthF32 = 16;

template <bool kDual>
__global__ void __launch_bounds__(256) grouped_gemm_f32_kernel(GroupedGemmParams p, VecFlags vec) {
  detail::pdl_begin();
  __shared__ float a_tile[kDepthF32][kTileRows + 1];  // k-major, so the inner loop broadcasts
  __shared__ float w_tile[kDual ? 2 : 1][kDepthF32][kTileCols + 1];
  __shared__ float tile_scale[2][kTileCols];
  __shared__ TileCoords tc;
  const int tid = int(threadIdx.x);
  if (tid < 32) locate_tile(p, tid, &tc);
  __syncthreads();
  const TileCoords t = tc;
  if (t.group < 0) return;
  const int g = t.group;
  const int64_t n0 = int64_t(blockIdx.y) * kTileCols, N = p.n_cols, K = p.depth;
  const auto* a = static_cast<const float*>(p.a) + int64_t(g) * p.a_group_cols;
  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {}, acc_up[4][4] = {};

  const bool fp8 = p.w.dtype == DType::f8_e4m3 || (kDual && p.w_up.dtype == DType::f8_e4m3);
  for (int64_t k0 = 0; k0 < K; k0 += kDepthF32) {
    if (fp8) {
      if (p.w.dtype == DType::f8_e4m3) fill_tile_scale<kDepthF32>(p.w, g, n0, k0, N, K, tile_scale[0], tid, 256);
      if (kDual && p.w_up.dtype == DType::f8_e4m3)
        fill_tile_scale<kDepthF32>(p.w_up, g, n0, k0, N, K, tile_scale[1], tid, 256);
      __syncthreads();
    }
    for (int idx = tid; idx < kTileRows * kDepthF32 / 4; idx += 256) {
      const int m = idx / (kDepthF32 / 4), k = (idx % (kDepthF32 / 4)) * 4;
      float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (m < t.n_rows) load_act4(a + (t.row0 + m) * p.a_ld, k0 + k, K, vec.a, v);
#pragma unroll
      for (int e = 0; e < 4; ++e) a_tile[k + e][m] = v[e];
    }
    load_weight_tile<kDepthF32>(p.w, g, n0, k0, N, K, tile_scale[0], vec.w, tid, 256,
                                [&](int n, int k, float v) { w_tile[0][k][n] = v; });
    if (kDual)
      load_weight_tile<kDepthF32>(p.w_up, g, n0, k0, N, K, tile_scale[1], vec.w_up, tid, 256,
                                  [&](int n, int k, float v) { w_tile[kDual ? 1 : 0][k][n] = v; });
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kDepthF32; ++k) {
      float av[4], wv[4], uv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = a_tile[k][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wv[j] = w_tile[0][k][tx * 4 + j];
        uv[j] = kDual ? w_tile[kDual ? 1 : 0][k][tx * 4 + j] : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          acc[i][j] = fmaf(av[i], wv[j], acc[i][j]);
          if (kDual) acc_up[i][j] = fmaf(av[i], uv[j], acc_up[i][j]);
        }
    }
    __syncthreads();
  }
  auto* y = static_cast<float*>(p.y) + int64_t(g) * p.y_group_cols;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = ty * 4 + i;
    if (m >= t.n_rows) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n < N) y[(t.row0 + m) * p.y_ld + n] = kDual ? silu(acc[i][j]) * acc_up[i][j] : acc[i][j];
    }
  }
}

int weight_bytes(DType t) { return t == DType::f8_e4m3 ? 1 : t == DType::bf16 ? 2 : 4; }

// Every 4-element group a kernel reads (row starts, group starts, the base) is 4-aligned.
bool quad_aligned(const void* base, int elem_bytes, int64_t ld, int64_t group_step) {
  return reinterpret_cast<uintptr_t>(base) % uintptr_t(4 * elem_bytes) == 0 && ld % 4 == 0 && group_step % 4 == 0;
}

}  // namespace

cudaError_t launch_grouped_gemm(const GroupedGemmParams& p, cudaStream_t stream) {
  const int64_t row_tiles = (p.n_rows + kTileRows - 1) / kTileRows;
  // With device row offsets each group wastes at most one partial tile.
  const int64_t grid_x = p.row_offsets ? row_tiles + p.n_groups : row_tiles * p.n_groups;
  const int64_t grid_y = (p.n_cols + kTileCols - 1) / kTileCols;
  if (grid_x == 0 || grid_y == 0) return cudaSuccess;
  const dim3 grid{unsigned(grid_x), unsigned(grid_y)};
  const bool dual = p.w_up.data != nullptr;
  const VecFlags vec{quad_aligned(p.a, p.act_dtype == DType::bf16 ? 2 : 4, p.a_ld, p.a_group_cols),
                     !p.w.k_major && quad_aligned(p.w.data, weight_bytes(p.w.dtype), p.w.ld, p.w.group_stride),
                     dual && !p.w_up.k_major &&
                         quad_aligned(p.w_up.data, weight_bytes(p.w_up.dtype), p.w_up.ld, p.w_up.group_stride)};
  if (p.act_dtype == DType::bf16) {
    if (dual) detail::launch(grouped_gemm_bf16_kernel<true>, grid, 128, 0, stream, p, vec);
    else detail::launch(grouped_gemm_bf16_kernel<false>, grid, 128, 0, stream, p, vec);
  } else {
    if (dual) detail::launch(grouped_gemm_f32_kernel<true>, grid, 256, 0, stream, p, vec);
    else detail::launch(grouped_gemm_f32_kernel<false>, grid, 256, 0, stream, p, vec);
  }
  return cudaGetLastError();
}

}  // namespace dsi::cuda
