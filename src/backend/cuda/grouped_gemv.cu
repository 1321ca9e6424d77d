// Skinny grouped GEMM kernels (grouped_gemv.h). Template parameters: the weight dtype (bf16 or
// FP8), R output columns per warp (each one weight row, two with the fused SwiGLU), N activation
// rows per pass. A warp runs along the whole depth K of its rows (no cross-warp reduction);
// each lane issues its next 16-byte chunks of every row before the math (8 row-chunks, 128
// bytes, in flight), and the warp's R x N sums meet in one reduce-scatter.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "backend/cuda/device_types.cuh"
#include "backend/cuda/grouped_gemv_common.cuh"
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

using detail::load_chunk;
using detail::nth_nonempty_group;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// 8 bf16 -> f32 (exact: a bf16 is the top half of an f32).
__device__ __forceinline__ void widen_bf16x8(const uint4& v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// 8 e4m3 codes (two words) -> f32 (exact, through half, which holds every e4m3 value).
__device__ __forceinline__ void widen_fp8x8(uint32_t lo, uint32_t hi, float* f) {
  const uint32_t w[2] = {lo, hi};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t((w[i] >> (16 * j)) & 0xffffu), __NV_E4M3);
      const float2 t = __half22float2(__half2(raw));
      f[4 * i + 2 * j] = t.x;
      f[4 * i + 2 * j + 1] = t.y;
    }
  }
}

// Sums of V values over the warp's lanes in V - 1 + (5 - log2 V) shuffles (not 5 V): at each
// step a lane keeps half of its values and trades the other half with its partner. Afterwards
// lane l holds the sum of value l >> (5 - log2 V) (every lane of a group of 32 / V lanes holds
// the same one).
template <int V>
__device__ __forceinline__ float warp_reduce_scatter(float (&v)[V], int lane) {
  static_assert(V >= 1 && V <= 32 && (V & (V - 1)) == 0, "V is a power of two up to 32");
#pragma unroll
  for (int step = 0; step < 5; ++step) {
    const int o = 16 >> step;
    const int count = V >> step;  // values still held: a constant once unrolled
    if (count > 1) {
      const int half = count / 2;
      const bool upper = (lane & o) != 0;
#pragma unroll
      for (int i = 0; i < half; ++i) {
        const float send = upper ? v[i] : v[i + half];
        const float keep = upper ? v[i + half] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
      }
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], o);
    }
  }
  return v[0];
}

// A CTA's four warps each own R output columns (weight rows) of one group and all of K.
template <bool kFp8, int R, bool kDual, int N>
__global__ void __launch_bounds__(kThreads, 1) grouped_gemv_kernel(GroupedGemvParams q) {
  detail::pdl_begin();
  const GroupedGemmParams& p = q.gemm;
  constexpr int E = kFp8 ? 16 : 8;            // weight elements per chunk
  constexpr int kWeightRows = kDual ? 2 * R : R;
  constexpr int kStride = 32 * E;             // elements between a lane's chunks
  constexpr int V = kWeightRows * N;          // sums per warp and pass
  // Chunks of each weight row a lane has in flight: 8 row-chunks (128 bytes, 32 registers) in all.
  constexpr int kDepth = kWeightRows >= 4 ? 2 : 8 / kWeightRows;
  static_assert(V <= 32, "a warp reduces at most 32 sums at once");
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;

  int g = int(blockIdx.y);
  int64_t row_begin = 0, row_end = p.n_rows;
  if (p.row_offsets) {
    g = nth_nonempty_group(p.row_offsets, p.n_groups, int(blockIdx.y), lane);
    if (g < 0) return;
    row_begin = p.row_offsets[g];
    row_end = p.row_offsets[g + 1];
  }
  const int64_t col0 = (int64_t(blockIdx.x) * kWarps + warp) * R;
  if (col0 >= p.n_cols) return;
  const uint8_t* wrow[kWeightRows];
  const float* srow[kWeightRows];
#pragma unroll
  for (int r = 0; r < kWeightRows; ++r) {
    // (Fields picked one by one: a reference to one of two param structs would go to local memory.)
    const bool up = r >= R;
    const int64_t col = min(col0 + r % R, p.n_cols - 1);  // a clamped column is computed, not stored
    const int64_t group_stride = up ? p.w_up.group_stride : p.w.group_stride, ld = up ? p.w_up.ld : p.w.ld;
    wrow[r] = static_cast<const uint8_t*>(up ? p.w_up.data : p.w.data) + (int64_t(g) * group_stride + col * ld) * (kFp8 ? 1 : 2);
    if constexpr (kFp8) {
      const GroupedWeight& w = p.w;  // scale grid geometry: w_up's is checked equal to w's
      srow[r] = (up ? p.w_up.scale : w.scale) + int64_t(g) * (up ? p.w_up.scale_group_stride : w.scale_group_stride) +
                ((col + w.row_offset + int64_t(g) * w.group_row_step) / w.block_rows) * (up ? p.w_up.scale_ld : w.scale_ld);
    } else {
      srow[r] = nullptr;
    }
  }
  const int block_cols = p.w.block_cols;  // w_up's is checked equal
  const int K = int(p.depth);
  const auto* a = static_cast<const __nv_bfloat16*>(p.a) + int64_t(g) * p.a_group_cols;

  for (int64_t r0 = row_begin; r0 < row_end; r0 += N) {
    const int nt = int(min(int64_t(N), row_end - r0));
    float acc[V];  // acc[r * N + t]
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = 0.0f;

    // acc += this chunk's weights (already loaded) times the activation rows at column k, eight
    // elements at a time (an FP8 chunk is two such halves), so few of them are live at once.
    auto accumulate = [&](int k, const uint4 (&wv)[kWeightRows]) {
      float sc[kWeightRows];
      const int kb = kFp8 ? k / block_cols : 0;  // the chunk lies in one scale block
#pragma unroll
      for (int r = 0; r < kWeightRows; ++r) sc[r] = kFp8 ? __ldg(srow[r] + kb) : 1.0f;
#pragma unroll
      for (int half = 0; half < E / 8; ++half) {
        float wf[kWeightRows][8];
#pragma unroll
        for (int r = 0; r < kWeightRows; ++r) {
          if constexpr (kFp8) {
            if (half == 0) widen_fp8x8(wv[r].x, wv[r].y, wf[r]);
            else widen_fp8x8(wv[r].z, wv[r].w, wf[r]);
          } else {
            widen_bf16x8(wv[r], wf[r]);
          }
        }
#pragma unroll
        for (int t = 0; t < N; ++t) {
          if (t >= nt) continue;  // (not break: a fully unrolled loop keeps acc in registers)
          float xf[8];
          widen_bf16x8(load_chunk(reinterpret_cast<const uint8_t*>(a + (r0 + t) * p.a_ld + k + 8 * half)), xf);
#pragma unroll
          for (int r = 0; r < kWeightRows; ++r) {
            float d = 0.0f;
#pragma unroll
            for (int e = 0; e < 8; ++e) d = fmaf(wf[r][e], xf[e], d);
            acc[r * N + t] = fmaf(d, sc[r], acc[r * N + t]);
          }
        }
      }
    };

    // Every load of kDepth chunks of each row is issued before the first product: a small
    // matrix is latency-bound, and a 4 KB bf16 row is then one round trip, not four.
    for (int k0 = lane * E; k0 < K; k0 += kDepth * kStride) {
      uint4 wv[kDepth][kWeightRows];
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        const int k = k0 + d * kStride;
#pragma unroll
        for (int r = 0; r < kWeightRows; ++r) wv[d][r] = k < K ? load_chunk(wrow[r] + int64_t(k) * (kFp8 ? 1 : 2)) : uint4{};
      }
#pragma unroll
      for (int d = 0; d < kDepth; ++d)
        if (k0 + d * kStride < K) accumulate(k0 + d * kStride, wv[d]);
    }

    // Lane l now holds sum number l / (32 / V): weight row i / N, activation row i % N. With
    // SwiGLU the up rows' sums sit 16 lanes above their gate rows' (the second half of acc).
    constexpr int kLanesPerSum = 32 / V;
    const float sum = warp_reduce_scatter<V>(acc, lane);
    const float up = kDual ? __shfl_down_sync(0xffffffffu, sum, 16) : 0.0f;
    const int i = lane / kLanesPerSum;
    const int r = i / N, t = i % N;
    const int64_t col = col0 + r;
    if (lane % kLanesPerSum == 0 && r < R && t < nt && col < p.n_cols) {
      const float v = kDual ? sum / (1.0f + expf(-sum)) * up : sum;
      const int64_t at = (r0 + t) * p.y_ld + int64_t(g) * p.y_group_cols + col;
      if (q.y_dtype == DType::f32) static_cast<float*>(p.y)[at] = v;
      else static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16_rn(v);
    }
  }
}

// The k-major form (GroupedWeight::k_major: W_g(n, k) stored at [k * ld + n], MLA's W_UK read
// along its rows), bf16 weights: each lane owns 8 consecutive output columns (one 16-byte chunk
// of a stored row), a warp 256 of them, and the four warps split K; their partial sums meet in
// shared memory. Every group owns all rows (row_offsets null).
constexpr int kKMajorCols = 32 * 8;  // output columns per CTA
constexpr int kKMajorDepth = 8;      // stored rows a warp loads before its products

template <int N>
__global__ void __launch_bounds__(kThreads, 1) grouped_gemv_kmajor_kernel(GroupedGemvParams q) {
  detail::pdl_begin();
  const GroupedGemmParams& p = q.gemm;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int g = int(blockIdx.y);
  const int64_t col = int64_t(blockIdx.x) * kKMajorCols + lane * 8;
  const bool has_col = col < p.n_cols;
  const auto* w = static_cast<const uint8_t*>(p.w.data) + (int64_t(g) * p.w.group_stride + col) * 2;
  const auto* a = static_cast<const __nv_bfloat16*>(p.a) + int64_t(g) * p.a_group_cols;
  __shared__ float partial[kWarps][N][kKMajorCols];
  for (int64_t r0 = 0; r0 < p.n_rows; r0 += N) {
    const int nt = int(min(int64_t(N), p.n_rows - r0));
    float acc[N][8];
#pragma unroll
    for (int t = 0; t < N; ++t)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[t][e] = 0.0f;
    if (has_col) {
      // kKMajorDepth stored rows' chunks in flight per lane before the math (latency-bound:
      // at one token the absorb reads 2 MB with 32 CTAs).
      const int K = int(p.depth);
      for (int k0 = warp; k0 < K; k0 += kWarps * kKMajorDepth) {
        uint4 wv[kKMajorDepth];
#pragma unroll
        for (int d = 0; d < kKMajorDepth; ++d) {
          const int k = k0 + d * kWarps;
          wv[d] = k < K ? load_chunk(w + int64_t(k) * p.w.ld * 2) : uint4{};
        }
#pragma unroll
        for (int d = 0; d < kKMajorDepth; ++d) {
          const int k = k0 + d * kWarps;
          if (k >= K) continue;
          float wf[8];
          widen_bf16x8(wv[d], wf);
#pragma unroll
          for (int t = 0; t < N; ++t) {
            if (t >= nt) continue;
            const float x = __bfloat162float(a[(r0 + t) * p.a_ld + k]);
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[t][e] = fmaf(wf[e], x, acc[t][e]);
          }
        }
      }
    }
#pragma unroll
    for (int t = 0; t < N; ++t)
#pragma unroll
      for (int e = 0; e < 8; ++e) partial[warp][t][lane * 8 + e] = acc[t][e];
    __syncthreads();
    for (int i = int(threadIdx.x); i < N * kKMajorCols; i += kThreads) {
      const int t = i / kKMajorCols, c = i % kKMajorCols;
      const int64_t n = int64_t(blockIdx.x) * kKMajorCols + c;
      if (t >= nt || n >= p.n_cols) continue;
      float sum = 0.0f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) sum += partial[v][t][c];
      const int64_t at = (r0 + t) * p.y_ld + int64_t(g) * p.y_group_cols + n;
      if (q.y_dtype == DType::f32) static_cast<float*>(p.y)[at] = sum;
      else static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16_rn(sum);
    }
    __syncthreads();  // partial is rewritten by the next pass
  }
}

cudaError_t launch_kmajor(const GroupedGemvParams& q, cudaStream_t stream) {
  const GroupedGemmParams& p = q.gemm;
  const dim3 grid{unsigned((p.n_cols + kKMajorCols - 1) / kKMajorCols), unsigned(p.n_groups)};
  const int64_t rows = p.n_rows;
  if (rows <= 1) detail::launch(grouped_gemv_kmajor_kernel<1>, grid, kThreads, 0, stream, q);
  else if (rows <= 2) detail::launch(grouped_gemv_kmajor_kernel<2>, grid, kThreads, 0, stream, q);
  else if (rows <= 4) detail::launch(grouped_gemv_kmajor_kernel<4>, grid, kThreads, 0, stream, q);
  else detail::launch(grouped_gemv_kmajor_kernel<8>, grid, kThreads, 0, stream, q);
  return cudaGetLastError();
}

template <bool kFp8, int R, bool kDual>
cudaError_t launch_rows(const GroupedGemvParams& q, int n_per_pass, dim3 grid, cudaStream_t stream) {
  switch (n_per_pass) {
    case 1: detail::launch(grouped_gemv_kernel<kFp8, R, kDual, 1>, grid, kThreads, 0, stream, q); break;
    case 2: detail::launch(grouped_gemv_kernel<kFp8, R, kDual, 2>, grid, kThreads, 0, stream, q); break;
    case 4: detail::launch(grouped_gemv_kernel<kFp8, R, kDual, 4>, grid, kThreads, 0, stream, q); break;
    default: detail::launch(grouped_gemv_kernel<kFp8, R, kDual, 8>, grid, kThreads, 0, stream, q); break;
  }
  return cudaGetLastError();
}

template <bool kFp8>
cudaError_t launch_dtype(const GroupedGemvParams& q, cudaStream_t stream) {
  const GroupedGemmParams& p = q.gemm;
  const bool dual = p.w_up.data != nullptr;
  const int active = active_groups(q);
  // Rows per pass from the mean rows of a non-empty group; a group with more takes more passes.
  const int64_t mean_rows = (p.n_rows + active - 1) / active;
  const int n_per_pass = mean_rows <= 1 ? 1 : mean_rows <= 2 ? 2 : mean_rows <= 4 ? 4 : 8;
  // Wide warps (more weight rows in flight each) once there are enough of them to fill the GPU.
  const bool wide = (p.n_cols / (dual ? 2 : 4)) * active >= 4096;
  const int R = wide ? (dual ? 2 : 4) : 1;
  const int64_t cols_per_cta = int64_t(kWarps) * R;
  const dim3 grid{unsigned((p.n_cols + cols_per_cta - 1) / cols_per_cta), unsigned(active)};
  if (dual) {
    return wide ? launch_rows<kFp8, 2, true>(q, n_per_pass, grid, stream)
                : launch_rows<kFp8, 1, true>(q, n_per_pass, grid, stream);
  }
  return wide ? launch_rows<kFp8, 4, false>(q, n_per_pass, grid, stream)
              : launch_rows<kFp8, 1, false>(q, n_per_pass, grid, stream);
}

}  // namespace

cudaError_t launch_grouped_gemv(const GroupedGemvParams& q, cudaStream_t stream) {
  if (q.gemm.n_rows == 0 || q.gemm.n_cols == 0) return cudaSuccess;
  if (q.gemm.w.k_major) return launch_kmajor(q, stream);
  if (q.tensor_cores && q.gemm.n_rows > q.fma_rows_per_group * active_groups(q) && grouped_gemv_mma_takes(q))
    return launch_grouped_gemv_mma(q, stream);
  return q.gemm.w.dtype == DType::f8_e4m3 ? launch_dtype<true>(q, stream) : launch_dtype<false>(q, stream);
}

}  // namespace dsi::cuda
