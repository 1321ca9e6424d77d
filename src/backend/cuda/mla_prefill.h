#pragma once
// MLA attention for prefill as two cuBLASLt products per chunk of query tokens (the step the
// CUDA backend takes when every sequence of a step brings many new tokens; CudaBackend::
// mla_attention decides). In the absorbed form every head attends to the same cache rows
// [c | k_pe] (576 wide for V2/V3), so the heads are rows of one product: with the chunk's
// queries as [(tokens x heads), r + dr] rows,
//   S = Q_full [c | k_pe]^T            (f32, tensor cores, bf16 operands)
//   P = causal_softmax(scale * S)       (bf16: the probabilities as the next product's operand)
//   O_latent = P c                      ([(tokens x heads), r], cuBLASLt with the cache rows as W^T)
// The two kernels here do what cuBLASLt does not: gather a sequence's paged cache rows into one
// contiguous matrix, and the masked softmax between the products.
//
// Numerics: as the attention kernel's (mla_attention.h) except that the probabilities are
// rounded to bf16 before P c (as FlashAttention does before its P V product): a relative error
// of 2^-9 per weight, of the order of the output's own bf16 rounding.
#include <cuda_runtime.h>

#include <cstdint>

namespace dsi::cuda {

// out[i, :] = pool[slot(i), :] for positions i in [0, n_rows) of one sequence, slot(i) =
// block_table[i / block_size] * block_size + i % block_size; bf16 rows of `width` elements
// (width * 2 bytes a multiple of 16, both row strides multiples of 8 elements).
struct GatherKvParams {
  const void* pool = nullptr;
  int64_t pool_ld = 0;
  const int32_t* block_table = nullptr;  // device, this sequence's row
  int block_size = 0;
  int64_t n_rows = 0;
  int64_t width = 0;
  void* out = nullptr;
  int64_t out_ld = 0;
};

// p[r, j] = softmax_j(scale * s[r, j]) over j < first_pos + r / heads + 1 (the row's query
// token sees the keys at and before its position), 0 for the rest of [0, n_keys): f32 scores,
// bf16 probabilities, one CTA per row.
struct CausalSoftmaxParams {
  const float* s = nullptr;
  int64_t s_ld = 0;
  void* p = nullptr;  // bf16
  int64_t p_ld = 0;
  int64_t n_rows = 0;
  int heads = 0;
  int64_t first_pos = 0;  // position of the chunk's first query token in its sequence
  int64_t n_keys = 0;
  float scale = 0.0f;
};

cudaError_t launch_gather_kv_rows(const GatherKvParams& p, cudaStream_t stream);
cudaError_t launch_causal_softmax(const CausalSoftmaxParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
