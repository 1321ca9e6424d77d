// MLA attention kernels: one CTA per (batch row, tile of heads, context split). The CTA's
// warps share each tile of cache rows through shared memory (widened to float32 once); a warp
// owns HPW heads (1 or 2), its lanes own interleaved columns of the query and the output,
// and the softmax runs online in float32 in base 2 (scale * log2(e) is folded into q).
// bf16 queries and cache of DeepSeek's dims (r = 512, dr = 64) take the tensor-core kernel
// instead (mla_attention_mma.cu); both end in this file's split combine.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/device_types.cuh"
#include "backend/cuda/launch.h"
#include "backend/cuda/mla_attention.h"
#include "backend/cuda/mla_split.cuh"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

constexpr int kRowsPerTile = kMlaSplitRows;  // cache rows per shared-memory tile: one per lane for the softmax
constexpr int kRowsAtOnce = 4;     // divides kRowsPerTile
constexpr int kMaxHeadsPerCta = 16;
constexpr float kLog2e = 1.4426950408889634f;

// NQ, NO: query and output columns per lane (D = r + dr <= 32 NQ, r <= 32 NO); HPW heads a warp.
template <class TQ, class TKV, int NQ, int NO, int HPW>
__global__ void mla_attention_kernel(MlaAttentionParams p) {
  detail::pdl_begin();
  constexpr int kHeadsPerWarp = HPW;
  extern __shared__ float kv_tile[];  // [kRowsPerTile, D]
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  const int row = int(blockIdx.x), split = int(blockIdx.z);
  const int r = p.kv_lora_rank, D = p.kv_lora_rank + p.rope_dim;
  const int heads_per_cta = n_warps * kHeadsPerWarp;
  const int h0 = int(blockIdx.y) * heads_per_cta + warp * kHeadsPerWarp;

  const MlaRowSplit rs = mla_row_split(p, row, split);
  const int seq = rs.seq, kv_begin = rs.kv_begin, kv_end = rs.kv_end;

  const TQ* q_row = static_cast<const TQ*>(p.q_full) + int64_t(row) * p.q_ld;
  const float q_scale = p.softmax_scale * kLog2e;
  float q[kHeadsPerWarp][NQ];
  float o[kHeadsPerWarp][NO];
  float m[kHeadsPerWarp], l[kHeadsPerWarp];
#pragma unroll
  for (int i = 0; i < kHeadsPerWarp; ++i) {
    const int h = h0 + i;
#pragma unroll
    for (int c = 0; c < NQ; ++c) {
      const int col = lane + 32 * c;
      q[i][c] = (h < p.n_heads && col < D) ? to_f32(q_row[int64_t(h) * D + col]) * q_scale : 0.0f;
    }
#pragma unroll
    for (int c = 0; c < NO; ++c) o[i][c] = 0.0f;
    m[i] = -INFINITY;
    l[i] = 0.0f;
  }

  const TKV* pool = static_cast<const TKV*>(p.kv_pool);
  const int32_t* blocks = seq >= 0 ? p.block_table + int64_t(seq) * p.block_table_ld : nullptr;
  for (int j0 = kv_begin; j0 < kv_end; j0 += kRowsPerTile) {
    const int n_rows = min(kRowsPerTile, kv_end - j0);
    __syncthreads();  // the previous tile is no longer read
    for (int jj = warp; jj < n_rows; jj += n_warps) {
      const int pos = j0 + jj;
      const int64_t slot = int64_t(blocks[pos / p.block_size]) * p.block_size + pos % p.block_size;
      const TKV* src = pool + slot * p.kv_ld;
      for (int col = lane; col < D; col += 32) kv_tile[jj * D + col] = to_f32(src[col]);
    }
    __syncthreads();

    // Scores: lane jj keeps the score of tile row jj for each of its heads. Four rows at a
    // time, so their dot products and warp reductions are independent work in flight.
    float s_mine[kHeadsPerWarp];
#pragma unroll
    for (int i = 0; i < kHeadsPerWarp; ++i) s_mine[i] = -INFINITY;
    for (int jj0 = 0; jj0 < n_rows; jj0 += kRowsAtOnce) {
      float acc[kRowsAtOnce][kHeadsPerWarp];
#pragma unroll
      for (int j = 0; j < kRowsAtOnce; ++j)
#pragma unroll
        for (int i = 0; i < kHeadsPerWarp; ++i) acc[j][i] = 0.0f;
#pragma unroll
      for (int c = 0; c < NQ; ++c) {
        const int col = lane + 32 * c;
#pragma unroll
        for (int j = 0; j < kRowsAtOnce; ++j) {
          // Rows past n_rows are still inside the tile's memory; their scores are dropped below.
          const float kv = col < D ? kv_tile[(jj0 + j) * D + col] : 0.0f;
#pragma unroll
          for (int i = 0; i < kHeadsPerWarp; ++i) acc[j][i] = fmaf(q[i][c], kv, acc[j][i]);
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int j = 0; j < kRowsAtOnce; ++j)
#pragma unroll
          for (int i = 0; i < kHeadsPerWarp; ++i) acc[j][i] += __shfl_xor_sync(0xffffffffu, acc[j][i], o);
#pragma unroll
      for (int j = 0; j < kRowsAtOnce; ++j)
        if (lane == jj0 + j && jj0 + j < n_rows) {
#pragma unroll
          for (int i = 0; i < kHeadsPerWarp; ++i) s_mine[i] = acc[j][i];
        }
    }
    float p_mine[kHeadsPerWarp];
#pragma unroll
    for (int i = 0; i < kHeadsPerWarp; ++i) {
      const float m_new = fmaxf(m[i], warp_max(s_mine[i]));  // finite: n_rows >= 1
      const float alpha = exp2f(m[i] - m_new);
      p_mine[i] = exp2f(s_mine[i] - m_new);
      l[i] = l[i] * alpha + warp_sum_f32(p_mine[i]);
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < NO; ++c) o[i][c] *= alpha;
    }
    for (int jj = 0; jj < n_rows; ++jj) {
      const float* v = kv_tile + jj * D;
      float pj[kHeadsPerWarp];
#pragma unroll
      for (int i = 0; i < kHeadsPerWarp; ++i) pj[i] = __shfl_sync(0xffffffffu, p_mine[i], jj);
#pragma unroll
      for (int c = 0; c < NO; ++c) {
        const int col = lane + 32 * c;
        const float vv = col < r ? v[col] : 0.0f;
#pragma unroll
        for (int i = 0; i < kHeadsPerWarp; ++i) o[i][c] = fmaf(pj[i], vv, o[i][c]);
      }
    }
  }

  if (seq < 0 && p.n_splits == 1) return;  // a row of no sequence: nothing to write
#pragma unroll
  for (int i = 0; i < kHeadsPerWarp; ++i) {
    const int h = h0 + i;
    if (h >= p.n_heads) continue;
    if (p.n_splits == 1) {
      TQ* out = static_cast<TQ*>(p.o_latent) + int64_t(row) * p.o_ld + int64_t(h) * r;
      const float inv = 1.0f / l[i];
#pragma unroll
      for (int c = 0; c < NO; ++c) {
        const int col = lane + 32 * c;
        if (col < r) out[col] = from_f32<TQ>(o[i][c] * inv);
      }
    } else {
      // Unnormalised partial sums and (m, l) in base 2; an empty split leaves l = 0.
      float* part = p.split_scratch + ((int64_t(split) * p.n_tokens + row) * p.n_heads + h) * (r + 2);
#pragma unroll
      for (int c = 0; c < NO; ++c) {
        const int col = lane + 32 * c;
        if (col < r) part[col] = o[i][c];
      }
      if (lane == 0) {
        part[r] = m[i];
        part[r + 1] = l[i];
      }
    }
  }
}

// Merges the splits of one (row, head) in split order, so the result does not depend on timing.
template <class TQ>
__global__ void mla_combine_kernel(MlaAttentionParams p) {
  detail::pdl_begin();
  const int row = int(blockIdx.x), h = int(blockIdx.y), r = p.kv_lora_rank;
  const int64_t split_stride = int64_t(p.n_tokens) * p.n_heads * (r + 2);
  const float* part = p.split_scratch + (int64_t(row) * p.n_heads + h) * (r + 2);
  float m_max = -INFINITY, l_sum = 0.0f;
  for (int s = 0; s < p.n_splits; ++s)
    if (part[s * split_stride + r + 1] > 0.0f) m_max = fmaxf(m_max, part[s * split_stride + r]);
  for (int s = 0; s < p.n_splits; ++s) {
    const float l = part[s * split_stride + r + 1];
    if (l > 0.0f) l_sum += l * exp2f(part[s * split_stride + r] - m_max);
  }
  if (!(l_sum > 0.0f)) return;  // a row of no sequence
  const float inv = 1.0f / l_sum;
  TQ* out = static_cast<TQ*>(p.o_latent) + int64_t(row) * p.o_ld + int64_t(h) * r;
  for (int col = int(threadIdx.x); col < r; col += int(blockDim.x)) {
    float acc = 0.0f;
    for (int s = 0; s < p.n_splits; ++s) {
      const float l = part[s * split_stride + r + 1];
      if (l > 0.0f) acc += part[s * split_stride + col] * exp2f(part[s * split_stride + r] - m_max);
    }
    out[col] = from_f32<TQ>(acc * inv);
  }
}

template <class TQ, class TKV, int NQ, int NO, int HPW>
cudaError_t launch_typed(const MlaAttentionParams& p, cudaStream_t stream) {
  const int D = p.kv_lora_rank + p.rope_dim;
  const int n_warps = std::min(kMaxHeadsPerCta / HPW, (p.n_heads + HPW - 1) / HPW);
  const int heads_per_cta = n_warps * HPW;
  const size_t smem = size_t(kRowsPerTile) * size_t(D) * sizeof(float);
  auto kernel = mla_attention_kernel<TQ, TKV, NQ, NO, HPW>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (err != cudaSuccess) return err;
  const dim3 grid(unsigned(p.n_tokens), unsigned((p.n_heads + heads_per_cta - 1) / heads_per_cta),
                  unsigned(p.n_splits));
  detail::launch(kernel, grid, unsigned(32 * n_warps), smem, stream, p);
  return cudaGetLastError();
}

template <class TQ>
cudaError_t launch_combine(const MlaAttentionParams& p, cudaStream_t stream) {
  detail::launch(mla_combine_kernel<TQ>, dim3(unsigned(p.n_tokens), unsigned(p.n_heads)), 128, 0, stream, p);
  return cudaGetLastError();
}

template <class TQ, class TKV, int NQ, int NO>
cudaError_t launch_heads(const MlaAttentionParams& p, cudaStream_t stream) {
  return p.heads_per_warp == 1 ? launch_typed<TQ, TKV, NQ, NO, 1>(p, stream) : launch_typed<TQ, TKV, NQ, NO, 2>(p, stream);
}

template <class TQ, class TKV>
cudaError_t launch_dims(const MlaAttentionParams& p, cudaStream_t stream) {
  const int D = p.kv_lora_rank + p.rope_dim;
  if (D <= 128 && p.kv_lora_rank <= 64) return launch_heads<TQ, TKV, 4, 2>(p, stream);
  return launch_heads<TQ, TKV, 18, 16>(p, stream);  // DeepSeek's r = 512, dr = 64
}

template <class TQ>
cudaError_t launch_kv(const MlaAttentionParams& p, cudaStream_t stream) {
  return p.kv_dtype == DType::bf16 ? launch_dims<TQ, __nv_bfloat16>(p, stream) : launch_dims<TQ, float>(p, stream);
}

}  // namespace

cudaError_t launch_mla_attention(const MlaAttentionParams& p, cudaStream_t stream) {
  if (p.n_tokens == 0) return cudaSuccess;
  const bool bf16 = p.act_dtype == DType::bf16;
  cudaError_t err = mla_attention_mma_takes(p) ? launch_mla_attention_mma(p, stream)
                    : bf16                     ? launch_kv<__nv_bfloat16>(p, stream)
                                               : launch_kv<float>(p, stream);
  if (err != cudaSuccess || p.n_splits == 1) return err;
  return bf16 ? launch_combine<__nv_bfloat16>(p, stream) : launch_combine<float>(p, stream);
}

}  // namespace dsi::cuda
