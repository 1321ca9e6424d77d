#pragma once
// Device-side helpers shared by the .cu files: f32 <-> storage conversions, block reductions,
// and the host-side dtype dispatch of a launch. Internal to src/backend/cuda.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>
#include <string>

#include "backend/cuda/args.h"
#include "backend/cuda/check.h"
#include "core/tensor.h"

namespace dsi::cuda::detail {

template <class T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// e4m3 code -> f32, exact (0x7f / 0xff are NaN).
__device__ __forceinline__ float fp8_e4m3_to_f32(uint8_t code) {
  __nv_fp8_e4m3 v;
  v.__x = code;
  return float(v);
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double partial[32];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  v = warp_sum(v);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < n_warps ? partial[lane] : 0.0;
  return warp_sum(v);
}

// The arithmetic rms_norm and rope share with the fused MLA kernel (mla_rope_norm_cache.cu),
// one definition so the fused and separate ops compute the same floats:
// 1 / sqrt(mean of squares + eps) from the f64 sum of squares of d values;
__device__ __forceinline__ float rms_inverse(double sum_sq, int64_t d, float eps) {
  return float(1.0 / sqrt(sum_sq / double(d) + double(eps)));
}
// the angle position * inv_freq in f64, its cos and sin rounded to f32, times the factor;
__device__ __forceinline__ void rope_cos_sin(int32_t position, float inv_freq, float factor, float& c, float& s) {
  const double t = double(position) * double(inv_freq);
  c = float(cos(t)) * factor;
  s = float(sin(t)) * factor;
}
// the pair (v[0], v[1]) rotated by (c, s), in place.
template <class T>
__device__ __forceinline__ void rotate_pair(T* v, float c, float s) {
  const float a = to_f32(v[0]), b = to_f32(v[1]);
  v[0] = from_f32<T>(a * c - b * s);
  v[1] = from_f32<T>(a * s + b * c);
}

// Max and sum of a float over the block, as block_sum: every thread gets the result.
template <class Op>
__device__ __forceinline__ float block_reduce_f32(float v, float identity, Op op) {
  __shared__ float partial[32];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < n_warps ? partial[lane] : identity;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float block_max_f32(float v) {
  return block_reduce_f32(v, -FLT_MAX, [](float a, float b) { return fmaxf(a, b); });
}
__device__ __forceinline__ float block_sum_f32(float v) {
  return block_reduce_f32(v, 0.0f, [](float a, float b) { return a + b; });
}

// Calls f(T{}) with T the device type of a float dtype (f32 -> float, bf16 -> __nv_bfloat16).
template <class F>
void dispatch_float(DType t, F&& f) {
  if (t == DType::f32)
    f(float{});
  else
    f(__nv_bfloat16{});
}

// Grid size for one block per row, capped (kernels loop over rows with a grid stride).
inline unsigned row_grid(int64_t rows) { return unsigned(rows < 65535 * 16 ? (rows > 0 ? rows : 1) : 65535 * 16); }

}  // namespace dsi::cuda::detail
