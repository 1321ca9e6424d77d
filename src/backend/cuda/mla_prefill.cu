// The gather and masked-softmax kernels of MLA's prefill by products (mla_prefill.h).
#include <cuda_bf16.h>

#include <cfloat>

#include "backend/cuda/kernel_util.cuh"
#include "backend/cuda/mla_prefill.h"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

constexpr int kGatherThreads = 256;
constexpr int kSoftmaxThreads = 256;

// One thread per 16-byte chunk of an output row.
__global__ void gather_kv_rows_kernel(GatherKvParams p) {
  detail::pdl_begin();
  const int64_t chunks_per_row = p.width * 2 / 16;
  const int64_t i = int64_t(blockIdx.x) * kGatherThreads + threadIdx.x;
  if (i >= p.n_rows * chunks_per_row) return;
  const int64_t row = i / chunks_per_row, chunk = i % chunks_per_row;
  const int64_t slot = int64_t(p.block_table[row / p.block_size]) * p.block_size + row % p.block_size;
  const auto* src = reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(p.pool) + slot * p.pool_ld);
  auto* dst = reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(p.out) + row * p.out_ld);
  dst[chunk] = src[chunk];
}

__global__ void causal_softmax_kernel(CausalSoftmaxParams p) {
  detail::pdl_begin();
  const int64_t r = blockIdx.x;
  const int64_t visible = p.first_pos + r / p.heads + 1;
  const int64_t n = visible < p.n_keys ? visible : p.n_keys;
  const float* s = p.s + r * p.s_ld;
  auto* out = static_cast<__nv_bfloat16*>(p.p) + r * p.p_ld;
  float m = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < n; j += kSoftmaxThreads) m = fmaxf(m, p.scale * s[j]);
  m = detail::block_max_f32(m);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += kSoftmaxThreads) sum += expf(p.scale * s[j] - m);
  sum = detail::block_sum_f32(sum);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < p.n_keys; j += kSoftmaxThreads)
    out[j] = __float2bfloat16_rn(j < n ? expf(p.scale * s[j] - m) * inv : 0.0f);
}

}  // namespace

cudaError_t launch_gather_kv_rows(const GatherKvParams& p, cudaStream_t stream) {
  const int64_t n = p.n_rows * (p.width * 2 / 16);
  if (n == 0) return cudaSuccess;
  const unsigned blocks = unsigned((n + kGatherThreads - 1) / kGatherThreads);
  detail::launch(gather_kv_rows_kernel, blocks, kGatherThreads, 0, stream, p);
  return cudaGetLastError();
}

cudaError_t launch_causal_softmax(const CausalSoftmaxParams& p, cudaStream_t stream) {
  if (p.n_rows == 0) return cudaSuccess;
  detail::launch(causal_softmax_kernel, unsigned(p.n_rows), kSoftmaxThreads, 0, stream, p);
  return cudaGetLastError();
}

}  // namespace dsi::cuda
