// Skinny grouped GEMM kernels (grouped_gemv.h). Template parameters: the weight dtype (bf16 or
// FP8), R output columns per CTA (each one weight row, two with the fused SwiGLU), N activation
// rows per pass. Everything a CTA reads per 16-byte weight chunk is issued before the math, two
// chunks deep, so each lane keeps 2 x R x 16 bytes of weights in flight.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "backend/cuda/device_types.cuh"
#include "backend/cuda/launch.h"

namespace dsi::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

__device__ __forceinline__ uint4 load_chunk(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// 8 bf16 -> f32 (exact: a bf16 is the top half of an f32).
__device__ __forceinline__ void widen_bf16x8(const uint4& v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// 16 e4m3 codes -> f32 (exact, through half, which holds every e4m3 value).
__device__ __forceinline__ void widen_fp8x16(const uint4& v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t((w[i] >> (16 * j)) & 0xffffu), __NV_E4M3);
      const float2 t = __half22float2(__half2(raw));
      f[4 * i + 2 * j] = t.x;
      f[4 * i + 2 * j + 1] = t.y;
    }
  }
}

// The index of the i-th group with rows (-1 if there are fewer), by one full warp.
__device__ int nth_nonempty_group(const int32_t* offsets, int n_groups, int i, int lane) {
  int seen = 0;
  for (int base = 0; base < n_groups; base += 32) {
    const int g = base + lane;
    const bool has_rows = g < n_groups && offsets[g + 1] > offsets[g];
    unsigned mask = __ballot_sync(0xffffffffu, has_rows);
    const int count = __popc(mask);
    if (i < seen + count) {
      for (int skip = i - seen; skip > 0; --skip) mask &= mask - 1;
      return base + __ffs(int(mask)) - 1;
    }
    seen += count;
  }
  return -1;
}

template <bool kFp8, int R, bool kDual, int N>
__global__ void __launch_bounds__(kThreads) grouped_gemv_kernel(GroupedGemvParams q) {
  const GroupedGemmParams& p = q.gemm;
  constexpr int E = kFp8 ? 16 : 8;            // weight elements per chunk
  constexpr int kWeightRows = kDual ? 2 * R : R;
  constexpr int kStride = kThreads * E;       // elements between a lane's chunks
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;

  int g = int(blockIdx.y);
  int64_t row_begin = 0, row_end = p.n_rows;
  if (p.row_offsets) {
    g = nth_nonempty_group(p.row_offsets, p.n_groups, int(blockIdx.y), lane);
    if (g < 0) return;
    row_begin = p.row_offsets[g];
    row_end = p.row_offsets[g + 1];
  }
  const int64_t col0 = int64_t(blockIdx.x) * R;
  const uint8_t* wrow[kWeightRows];
  const float* srow[kWeightRows];
#pragma unroll
  for (int r = 0; r < kWeightRows; ++r) {
    const GroupedWeight& w = r < R ? p.w : p.w_up;
    const int64_t col = min(col0 + r % R, p.n_cols - 1);  // a clamped column is computed, not stored
    wrow[r] = static_cast<const uint8_t*>(w.data) + (int64_t(g) * w.group_stride + col * w.ld) * (kFp8 ? 1 : 2);
    srow[r] = kFp8 ? w.scale + int64_t(g) * w.scale_group_stride +
                         ((col + w.row_offset + int64_t(g) * w.group_row_step) / w.block_rows) * w.scale_ld
                   : nullptr;
  }
  const int block_cols = p.w.block_cols;  // w_up's is checked equal
  const int K = int(p.depth);
  const auto* a = static_cast<const __nv_bfloat16*>(p.a) + int64_t(g) * p.a_group_cols;

  __shared__ float partial[kWarps][kWeightRows][N];
  for (int64_t r0 = row_begin; r0 < row_end; r0 += N) {
    const int nt = int(min(int64_t(N), row_end - r0));
    float acc[kWeightRows][N];
#pragma unroll
    for (int r = 0; r < kWeightRows; ++r)
#pragma unroll
      for (int t = 0; t < N; ++t) acc[r][t] = 0.0f;

    // acc += this chunk's weights (already loaded) times the activation rows at column k.
    auto accumulate = [&](int k, const uint4 (&wv)[kWeightRows]) {
      float wf[kWeightRows][E];
      float sc[kWeightRows];
      const int kb = kFp8 ? k / block_cols : 0;  // the chunk lies in one scale block
#pragma unroll
      for (int r = 0; r < kWeightRows; ++r) {
        if constexpr (kFp8) {
          widen_fp8x16(wv[r], wf[r]);
          sc[r] = __ldg(srow[r] + kb);
        } else {
          widen_bf16x8(wv[r], wf[r]);
          sc[r] = 1.0f;
        }
      }
#pragma unroll
      for (int t = 0; t < N; ++t) {
        if (t >= nt) continue;  // (not break: a fully unrolled loop keeps acc in registers)
        const __nv_bfloat16* x = a + (r0 + t) * p.a_ld + k;
        float xf[E];
        widen_bf16x8(load_chunk(reinterpret_cast<const uint8_t*>(x)), xf);
        if constexpr (E == 16) widen_bf16x8(load_chunk(reinterpret_cast<const uint8_t*>(x + 8)), xf + 8);
#pragma unroll
        for (int r = 0; r < kWeightRows; ++r) {
          float d = 0.0f;
#pragma unroll
          for (int e = 0; e < E; ++e) d = fmaf(wf[r][e], xf[e], d);
          acc[r][t] = fmaf(d, sc[r], acc[r][t]);
        }
      }
    };

    for (int k = (warp * 32 + lane) * E; k < K; k += 2 * kStride) {
      const int k2 = k + kStride;
      uint4 w1[kWeightRows], w2[kWeightRows];
#pragma unroll
      for (int r = 0; r < kWeightRows; ++r) w1[r] = load_chunk(wrow[r] + int64_t(k) * (kFp8 ? 1 : 2));
      if (k2 < K) {
#pragma unroll
        for (int r = 0; r < kWeightRows; ++r) w2[r] = load_chunk(wrow[r] + int64_t(k2) * (kFp8 ? 1 : 2));
      }
      accumulate(k, w1);
      if (k2 < K) accumulate(k2, w2);
    }

#pragma unroll
    for (int r = 0; r < kWeightRows; ++r)
#pragma unroll
      for (int t = 0; t < N; ++t) {
        const float v = warp_sum_f32(acc[r][t]);
        if (lane == 0) partial[warp][r][t] = v;
      }
    __syncthreads();
    for (int i = int(threadIdx.x); i < R * N; i += kThreads) {
      const int r = i / N, t = i % N;
      const int64_t col = col0 + r;
      if (t >= nt || col >= p.n_cols) continue;
      float s = 0.0f, u = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        s += partial[w][r][t];
        if constexpr (kDual) u += partial[w][R + r][t];
      }
      const float v = kDual ? s / (1.0f + expf(-s)) * u : s;
      const int64_t at = (r0 + t) * p.y_ld + int64_t(g) * p.y_group_cols + col;
      if (q.y_dtype == DType::f32) static_cast<float*>(p.y)[at] = v;
      else static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16_rn(v);
    }
    __syncthreads();  // partial is rewritten by the next pass
  }
}

template <bool kFp8, int R, bool kDual>
cudaError_t launch_rows(const GroupedGemvParams& q, int n_per_pass, dim3 grid, cudaStream_t stream) {
  switch (n_per_pass) {
    case 1: grouped_gemv_kernel<kFp8, R, kDual, 1><<<grid, kThreads, 0, stream>>>(q); break;
    case 2: grouped_gemv_kernel<kFp8, R, kDual, 2><<<grid, kThreads, 0, stream>>>(q); break;
    case 4: grouped_gemv_kernel<kFp8, R, kDual, 4><<<grid, kThreads, 0, stream>>>(q); break;
    default: grouped_gemv_kernel<kFp8, R, kDual, 8><<<grid, kThreads, 0, stream>>>(q); break;
  }
  return cudaGetLastError();
}

template <bool kFp8>
cudaError_t launch_dtype(const GroupedGemvParams& q, cudaStream_t stream) {
  const GroupedGemmParams& p = q.gemm;
  const bool dual = p.w_up.data != nullptr;
  const int active = p.row_offsets ? (q.max_active_groups > 0 ? q.max_active_groups : p.n_groups) : p.n_groups;
  // Rows per pass from the mean rows of a non-empty group; a group with more takes more passes.
  const int64_t mean_rows = (p.n_rows + active - 1) / active;
  const int n_per_pass = mean_rows <= 1 ? 1 : mean_rows <= 2 ? 2 : mean_rows <= 4 ? 4 : 8;
  // Wide CTAs (more weight rows in flight each) once there are enough of them to fill the GPU.
  const bool wide = (p.n_cols / (dual ? 2 : 4)) * active >= 2048;
  const int R = wide ? (dual ? 2 : 4) : 1;
  const dim3 grid{unsigned((p.n_cols + R - 1) / R), unsigned(active)};
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
  return q.gemm.w.dtype == DType::f8_e4m3 ? launch_dtype<true>(q, stream) : launch_dtype<false>(q, stream);
}

}  // namespace dsi::cuda
