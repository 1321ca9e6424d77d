#pragma once
// What MLA does to a token's query and latent between their products and the absorbed query,
// in one kernel: the latent rms-normed, the rotary dims of every query head and of the shared
// key rotated, the latent row written to the cache. Four launches a layer become one; each of
// the four steps computes exactly what its own kernel does (elementwise.h rms_norm, rope,
// kv_cache_write) with the same arithmetic: the helpers of kernel_util.cuh that those use.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace dsi::cuda {

struct MlaRopeNormCacheParams {
  Tensor q;                  // [n, *] f32 or bf16: rotated in place
  Tensor kv;                 // [n, kv_dim] q's dtype: latent normed and key rotated in place
  Tensor pool;               // one layer's cache rows [n_slots, kv_dim], f32 or bf16
  const int64_t* slots;      // [n] rows of pool; a slot outside [0, n_slots) is skipped
  const float* kv_norm;      // [latent] the latent's norm weight
  int64_t latent;            // normed columns [0, latent) of kv
  float eps;
  int q_heads;               // q's head h starts at column h * q_head_stride
  int64_t q_head_stride;
  int64_t q_rope_offset;     // first rotated column inside a query head
  int64_t kv_rope_offset;    // first rotated column of kv (>= latent)
  const int32_t* positions;  // [n]
  const float* inv_freq;     // [n_pairs], shared by q and kv
  int n_pairs;               // at most kMlaMaxRopePairs
  float attention_factor;
};
inline constexpr int kMlaMaxRopePairs = 128;

void mla_rope_norm_cache(const MlaRopeNormCacheParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
