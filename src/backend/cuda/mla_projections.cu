// The rope half of the absorbed query: q_full[t, h, r:] = q[t, h, dn:], copied unchanged.
#include <cuda_bf16.h>

#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

template <class T>
__global__ void copy_rope_part_kernel(MlaAbsorbParams p) {
  detail::pdl_begin();
  const int t = int(blockIdx.x), dr = p.qk_rope_head_dim;
  const auto* q = static_cast<const T*>(p.q) + int64_t(t) * p.q_ld;
  auto* q_full = static_cast<T*>(p.q_full) + int64_t(t) * p.q_full_ld;
  const int qd = p.qk_nope_head_dim + dr, D = p.kv_lora_rank + dr;
  for (int i = int(threadIdx.x); i < p.n_heads * dr; i += int(blockDim.x)) {
    const int h = i / dr, c = i % dr;
    q_full[int64_t(h) * D + p.kv_lora_rank + c] = q[int64_t(h) * qd + p.qk_nope_head_dim + c];
  }
}

}  // namespace

cudaError_t launch_copy_rope_part(const MlaAbsorbParams& p, cudaStream_t stream) {
  if (p.n_tokens == 0 || p.qk_rope_head_dim == 0) return cudaSuccess;
  const unsigned blocks = unsigned(p.n_tokens);
  if (p.act_dtype == DType::bf16) detail::launch(copy_rope_part_kernel<__nv_bfloat16>, blocks, 256, 0, stream, p);
  else detail::launch(copy_rope_part_kernel<float>, blocks, 256, 0, stream, p);
  return cudaGetLastError();
}

}  // namespace dsi::cuda
