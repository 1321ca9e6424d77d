#pragma once
// Device helpers of the two skinny grouped kernels (grouped_gemv.cu: CUDA-core FMA,
// grouped_gemv_mma.cu: tensor-core MMA): 16-byte weight loads and the walk from a CTA to the
// non-empty group it serves.
#include <cuda_runtime.h>

#include <cstdint>

namespace dsi::cuda::detail {

// 16 bytes through the read-only path (weights and activations are not written by the kernel).
__device__ __forceinline__ uint4 load_chunk(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// The index of the i-th group with rows (-1 if there are fewer), by one full warp.
__device__ __forceinline__ int nth_nonempty_group(const int32_t* offsets, int n_groups, int i, int lane) {
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

}  // namespace dsi::cuda::detail
