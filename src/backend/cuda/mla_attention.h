#pragma once
// MLA attention in latent space over the paged cache (MATH.md "Attention (MLA)", absorbed
// form), for any mix of prefill chunks and decode tokens in one batch. The CPU oracle is
// CpuBackend::mla_attention (src/backend/cpu/mla.cpp).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace dsi::cuda {

// All pointers are device memory; nothing is allocated and nothing is read back to the host,
// so a call can be captured in a CUDA graph. Row strides are in elements.
struct MlaAttentionParams {
  DType act_dtype = DType::f32;  // q_full and o_latent: f32 or bf16
  DType kv_dtype = DType::f32;   // the cache pool: f32 or bf16
  const void* q_full = nullptr;  // [n_tokens, n_heads * (r + dr)], absorbed queries (rope applied)
  int64_t q_ld = 0;
  const void* kv_pool = nullptr;  // [n_blocks * block_size, r + dr] of ONE layer: rows [c, k_pe]
  int64_t kv_ld = 0;
  void* o_latent = nullptr;  // [n_tokens, n_heads * r]; rows of no sequence are left untouched
  int64_t o_ld = 0;
  // The step's sequences, in any order: sequence s owns batch rows [first_row, first_row +
  // n_tokens) at positions [n_cached, n_cached + n_tokens); row i of it sees positions
  // [0, n_cached + i] (causal). block_table row s lists the blocks holding those positions.
  const int32_t* seq_first_row = nullptr;  // [n_seqs]
  const int32_t* seq_n_tokens = nullptr;   // [n_seqs]
  const int32_t* seq_n_cached = nullptr;   // [n_seqs]
  const int32_t* block_table = nullptr;    // [n_seqs, *], row stride block_table_ld
  int n_seqs = 0;
  int block_table_ld = 0;  // row stride of block_table (StepLimits::max_blocks_per_seq)
  int n_tokens = 0;
  int n_heads = 0;
  int kv_lora_rank = 0;  // r
  int rope_dim = 0;      // dr
  int block_size = 0;
  float softmax_scale = 0;
  // Flash-decoding split of each row's context into n_splits ranges of whole 32-row tiles, merged by
  // a second kernel. n_splits > 1 needs split_scratch of mla_attention_scratch_floats() floats.
  int n_splits = 1;
  float* split_scratch = nullptr;  // [n_splits, n_tokens, n_heads, r + 2]
  // Heads per warp, 1 or 2 (mla_attention_pick_heads_per_warp); the result does not depend on it.
  int heads_per_warp = 2;
  // The tensor-core kernel (mla_attention_mma.cu) where it takes the shape: bf16 queries and
  // cache with DeepSeek's r = 512, dr = 64. false: the CUDA-core kernel for every shape.
  bool tensor_cores = true;
};

// Floats of split_scratch a call with these shapes and n_splits needs (0 for one split).
int64_t mla_attention_scratch_floats(const MlaAttentionParams& p);

// A split count that fills one wave of two CTAs a multiprocessor and no more: more splits for
// few rows and long contexts, none where the rows alone fill the GPU, at most one per 32 rows of
// the longest context (max_context tokens) of the step.
int mla_attention_pick_splits(int n_tokens, int n_heads, int max_context, int n_multiprocessors);

// 2 heads a warp, or 1 where the rows, head tiles and splits leave most multiprocessors idle
// (a decode step of a few tokens): a warp's chain of dependent products is then half as long.
int mla_attention_pick_heads_per_warp(int n_tokens, int n_heads, int n_splits, int n_multiprocessors);

// o_latent[t, h] = sum_j softmax_j(scale * q_full[t, h] . row_j) * row_j[:r], online softmax in
// float32. Fails (dsi::Error) on shapes the kernels were not built for (r + dr > 576, r > 512).
void mla_attention(const MlaAttentionParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
