// MoE dispatch (a stable counting sort of the (token, slot) pairs by expert, then a gather of
// the tokens' rows) and combine (the weighted sum of each token's expert rows).
#include <cuda_bf16.h>

#include "backend/cuda/device_types.cuh"
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

constexpr int kSortThreads = 1024;
constexpr int kSortWarps = kSortThreads / 32;

// One CTA: pairs are taken in chunks of 1024 in slot order; a pair's place is its expert's
// offset, plus the pairs of that expert in earlier chunks, earlier warps and earlier lanes.
// So within an expert the rows follow the token index, then the slot: no atomics, no races.
__global__ void __launch_bounds__(kSortThreads) moe_sort_kernel(MoeDispatchParams p) {
  detail::pdl_begin();
  __shared__ int warp_count[kSortWarps][kMoeMaxExperts];
  __shared__ int running[kMoeMaxExperts];
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int E = p.n_experts, n_slots = p.n_tokens * p.top_k;
  for (int i = tid; i < kSortWarps * kMoeMaxExperts; i += kSortThreads) (&warp_count[0][0])[i] = 0;
  for (int e = tid; e < E; e += kSortThreads) running[e] = 0;
  __syncthreads();
  for (int i = tid; i < n_slots; i += kSortThreads) {
    const int e = p.expert_ids[i];
    if (e >= 0 && e < E) atomicAdd(&running[e], 1);  // counts only: their order is irrelevant
  }
  __syncthreads();
  if (tid == 0) {
    int acc = 0;
    for (int e = 0; e < E; ++e) {
      const int n = running[e];
      running[e] = acc;
      p.expert_offsets[e] = acc;
      acc += n;
    }
    p.expert_offsets[E] = acc;
  }
  __syncthreads();
  for (int base = 0; base < n_slots; base += kSortThreads) {
    const int i = base + tid;
    int e = i < n_slots ? p.expert_ids[i] : -1;
    if (e >= E) e = -1;
    const unsigned peers = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    if (e >= 0 && rank == 0) warp_count[warp][e] = __popc(peers);
    __syncthreads();
    if (e >= 0) {
      int row = running[e] + rank;
      for (int w = 0; w < warp; ++w) row += warp_count[w][e];
      p.row_map[i] = row;
    }
    __syncthreads();
    for (int ee = tid; ee < E; ee += kSortThreads) {
      int add = 0;
      for (int w = 0; w < kSortWarps; ++w) {
        add += warp_count[w][ee];
        warp_count[w][ee] = 0;
      }
      running[ee] += add;
    }
    __syncthreads();
  }
}

// x_sorted[row_map[slot]] = x[slot / top_k], one CTA per slot (a scatter, so dispatch needs no
// inverse map); 16-byte copies where the rows allow them. Byte strides: nvcc device code
// cannot call core/dtype.h's dtype_size.
__global__ void moe_scatter_rows_kernel(MoeDispatchParams p, int64_t row_bytes, int64_t src_ld_bytes,
                                        int64_t dst_ld_bytes, bool vec16) {
  detail::pdl_begin();
  const int slot = int(blockIdx.x);
  const int e = p.expert_ids[slot];
  if (e < 0 || e >= p.n_experts) return;  // a dropped id has no row
  const char* src = static_cast<const char*>(p.x) + int64_t(slot / p.top_k) * src_ld_bytes;
  char* dst = static_cast<char*>(p.x_sorted) + int64_t(p.row_map[slot]) * dst_ld_bytes;
  if (vec16) {
    for (int64_t i = threadIdx.x; i < row_bytes / 16; i += blockDim.x)
      reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
  } else {
    for (int64_t i = threadIdx.x; i < row_bytes / 2; i += blockDim.x)
      reinterpret_cast<uint16_t*>(dst)[i] = reinterpret_cast<const uint16_t*>(src)[i];
  }
}

// out[t] = sum over t's slots in increasing expert id of w * y_sorted[row] (+ shared_out[t]),
// with separate roundings of the products and sums, as the CPU's loop does them.
template <class T>
__global__ void moe_combine_kernel(MoeCombineParams p) {
  detail::pdl_begin();
  __shared__ int order[kMoeMaxTopK];
  const int t = int(blockIdx.x), k = p.top_k;
  const int32_t* ids = p.expert_ids + int64_t(t) * k;
  if (threadIdx.x == 0) {
    for (int j = 0; j < k; ++j) {  // insertion sort of the slots by expert id
      int i = j;
      while (i > 0 && ids[order[i - 1]] > ids[j]) {
        order[i] = order[i - 1];
        --i;
      }
      order[i] = j;
    }
  }
  __syncthreads();
  const auto* y = static_cast<const T*>(p.y_sorted);
  const auto* shared = static_cast<const T*>(p.shared_out);
  T* out = static_cast<T*>(p.out) + int64_t(t) * p.out_ld;
  for (int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; c < p.hidden; c += int64_t(gridDim.y) * blockDim.x) {
    float acc = 0.0f;
    for (int jj = 0; jj < k; ++jj) {
      const int j = order[jj];
      const int64_t row = p.row_map[int64_t(t) * k + j];
      acc = __fadd_rn(acc, __fmul_rn(p.expert_weights[int64_t(t) * k + j], to_f32(y[row * p.hidden + c])));
    }
    // The routed sum is rounded before the shared output joins it, as the separate add did.
    if (shared) acc = __fadd_rn(to_f32(from_f32<T>(acc)), to_f32(shared[int64_t(t) * p.shared_ld + c]));
    out[c] = from_f32<T>(acc);
  }
}

}  // namespace

cudaError_t launch_moe_dispatch(const MoeDispatchParams& p, cudaStream_t stream) {
  detail::launch(moe_sort_kernel, 1, kSortThreads, 0, stream, p);
  cudaError_t err = cudaGetLastError();
  const int n_slots = p.n_tokens * p.top_k;
  if (err != cudaSuccess || n_slots == 0) return err;
  const int64_t esize = int64_t(dtype_size(p.act_dtype));
  const int64_t row_bytes = p.hidden * esize, src_ld = p.x_ld * esize, dst_ld = p.x_sorted_ld * esize;
  const bool vec16 = row_bytes % 16 == 0 && src_ld % 16 == 0 && dst_ld % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && reinterpret_cast<uintptr_t>(p.x_sorted) % 16 == 0;
  detail::launch(moe_scatter_rows_kernel, unsigned(n_slots), 128, 0, stream, p, row_bytes, src_ld, dst_ld, vec16);
  return cudaGetLastError();
}

cudaError_t launch_moe_combine(const MoeCombineParams& p, cudaStream_t stream) {
  if (p.n_tokens == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const dim3 grid(unsigned(p.n_tokens), unsigned((p.hidden + kThreads - 1) / kThreads));
  if (p.act_dtype == DType::bf16) detail::launch(moe_combine_kernel<__nv_bfloat16>, grid, kThreads, 0, stream, p);
  else detail::launch(moe_combine_kernel<float>, grid, kThreads, 0, stream, p);
  return cudaGetLastError();
}

}  // namespace dsi::cuda
