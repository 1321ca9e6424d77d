#pragma once
// Row-wise kernels of the CUDA backend: embedding gather, row gather, RMSNorm (optionally fused with the
// residual add), rotary embedding, SiLU gating, add, dtype conversion and the KV cache write.
// Activations are f32 or bf16 (Tensor.dtype); all arithmetic is f32 (sums of squares f64), as in
// the CPU backend, so results differ from it only by rounding (tests/backend/cuda states how
// much). Every pointer is device memory. Each function checks shapes, dtypes and strides, throws
// dsi::Error naming the problem before launching, then queues its kernel on `stream` and checks
// the launch (DSI_CUDA_CHECK_LAUNCH). Inputs must not overlap outputs unless a comment says so.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace dsi::cuda {

struct EmbeddingParams {
  Weight table;          // [vocab, hidden] f32, bf16, or f8_e4m3 with f32 block scales (table.scale)
  const int32_t* ids;    // [n_ids]; an id outside [0, vocab) gives a row of NaN (the host checks
                         // ids before upload; this only keeps a bad one from reading out of bounds)
  int64_t n_ids;
  Tensor out;            // [n_ids, hidden] f32 or bf16
};
// out[i] = table[ids[i]] (fp8: code x block scale, rounded once to out's dtype).
void embedding(const EmbeddingParams& p, cudaStream_t stream);

struct RmsNormParams {
  Tensor x;         // [n, d] f32 or bf16; with a residual it is updated in place to x + residual
  Tensor residual;  // [n, d] f32 or bf16, or data == nullptr for a plain norm
  Tensor weight;    // f32 [1, d]
  float eps;
  Tensor out;       // [n, d] f32 or bf16; may alias x
};
// Fused residual: x = round(x + residual); then out = weight * x / sqrt(mean(x^2) + eps),
// per row (MATH.md "Layer"). The norm reads the rounded x, so it equals add then rms_norm.
void rms_norm(const RmsNormParams& p, cudaStream_t stream);

struct RopeParams {
  Tensor x;                  // [n, cols] f32 or bf16, rotated in place
  int n_heads;               // head h starts at column h * head_stride
  int64_t head_stride;
  int64_t rope_offset;       // first rotated column inside a head
  const int32_t* positions;  // [n]
  const float* inv_freq;     // [n_pairs] (model/rope.h: plain or YaRN)
  int n_pairs;               // rope_dim / 2
  float attention_factor;    // cos and sin are scaled by it (YaRN mscale ratio, 1 without)
};
// Rotates the interleaved pairs (x[2i], x[2i+1]) of columns [rope_offset, rope_offset + 2 n_pairs)
// of every head of row r by positions[r] * inv_freq[i] (MATH.md "Rotary embedding"); the angle
// and its cos/sin are computed in f64 like the CPU backend, then rounded to f32.
void rope(const RopeParams& p, cudaStream_t stream);

struct SiluMulParams {
  Tensor gate;  // [n, d] f32 or bf16
  Tensor up;    // [n, d] f32 or bf16 (may be column slices of one [n, 2d] gate|up product)
  Tensor out;   // [n, d] f32 or bf16; may alias gate
};
// out = silu(gate) * up = gate / (1 + exp(-gate)) * up.
void silu_mul(const SiluMulParams& p, cudaStream_t stream);

struct AddParams {
  Tensor x;  // [n, d] f32 or bf16, updated in place
  Tensor y;  // [n, d] f32 or bf16
};
// x += y.
void add(const AddParams& p, cudaStream_t stream);

struct ConvertParams {
  Tensor src;  // [n, d] f32 or bf16
  Tensor dst;  // [n, d] f32 or bf16 (bf16: round to nearest even, NaN stays NaN)
};
void convert(const ConvertParams& p, cudaStream_t stream);

struct KvCacheWriteParams {
  Tensor pool;           // one layer's rows [n_slots, kv_dim] f32 or bf16 (KvCacheView::layer)
  Tensor kv;             // [n_tokens, kv_dim] f32 or bf16: the new tokens' latent rows
  const int64_t* slots;  // [n_tokens] rows of pool; a slot outside [0, n_slots) is skipped
                         // (the host checks slots when it builds the step)
};
// pool[slots[i]] = kv[i], converted to pool's dtype.
void kv_cache_write(const KvCacheWriteParams& p, cudaStream_t stream);

struct GatherRowsParams {
  Tensor x;             // [n, d] f32 or bf16
  const int32_t* rows;  // [out.rows] rows of x (the host checked them; one outside is skipped)
  Tensor out;           // [m, d] f32 or bf16
};
// out[i] = x[rows[i]], converted to out's dtype.
void gather_rows(const GatherRowsParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
