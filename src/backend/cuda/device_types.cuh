#pragma once
// Device helpers of the attention and MoE kernels, on top of kernel_util.cuh's conversions:
// loads of a dtype known only at run time (weights: f32, bf16 or FP8) and float warp sums.
#include "backend/cuda/kernel_util.cuh"

namespace dsi::cuda {

using detail::fp8_e4m3_to_f32;
using detail::from_f32;
using detail::to_f32;
using detail::warp_max;

// Element i of a buffer of dtype t as float32 (the branch is uniform across a launch).
__device__ __forceinline__ float load_any(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::f8_e4m3: return fp8_e4m3_to_f32(static_cast<const uint8_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ float warp_sum_f32(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace dsi::cuda
