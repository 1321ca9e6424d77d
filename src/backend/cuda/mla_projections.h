#pragma once
// MLA's per-head products with kv_b_proj around the latent attention (MATH.md "Absorbed form"),
// matching CpuBackend::mla_absorb_query / mla_expand_output. Each is one grouped-GEMM launch
// over the heads (plus, for the query, one copy of the rope part); for decode-sized bf16 batches
// (skinny_limits) it is the skinny grouped kernel instead (grouped_gemv.h). Device pointers only.
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/gemm.h"
#include "backend/cuda/grouped_gemv.h"
#include "core/dtype.h"

namespace dsi::cuda {

// A weight matrix in device memory (core/tensor.h's Weight, with device pointers).
struct DeviceWeight {
  const void* data = nullptr;  // [rows, cols], row stride ld elements
  DType dtype = DType::bf16;   // f32, bf16 or f8_e4m3
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;
  const float* scale = nullptr;  // fp8: f32 [ceil((row_offset + rows) / block_rows), ceil(cols / block_cols)]
  int64_t scale_ld = 0;
  int64_t row_offset = 0;  // first row of data inside the matrix that scale describes
  int block_rows = 128;
  int block_cols = 128;
};

struct MlaAbsorbParams {
  DType act_dtype = DType::bf16;  // q and q_full: bf16 or f32
  int n_tokens = 0;
  int n_heads = 0;
  int qk_nope_head_dim = 0;  // dn
  int qk_rope_head_dim = 0;  // dr
  int v_head_dim = 0;        // dv
  int kv_lora_rank = 0;      // r
  const void* q = nullptr;   // [n_tokens, n_heads * (dn + dr)] (rope applied)
  int64_t q_ld = 0;
  DeviceWeight kv_b;         // [n_heads * (dn + dv), r]: per head W_UK rows, then W_UV rows
  void* q_full = nullptr;    // [n_tokens, n_heads * (r + dr)]: per head [W_UK_h^T q_nope_h, q_pe_h]
  int64_t q_full_ld = 0;
  SkinnyKernel skinny = SkinnyKernel::tensor_cores;  // decode (few tokens, bf16): grouped_gemv.h
  GemmContext* gemm = nullptr;  // bf16 past the skinny limits: the heads as one batched cuBLASLt product
};

struct MlaExpandParams {
  DType act_dtype = DType::bf16;  // o_latent and o: bf16 or f32
  int n_tokens = 0;
  int n_heads = 0;
  int qk_nope_head_dim = 0;  // dn
  int v_head_dim = 0;        // dv
  int kv_lora_rank = 0;      // r
  const void* o_latent = nullptr;  // [n_tokens, n_heads * r]
  int64_t o_latent_ld = 0;
  DeviceWeight kv_b;               // [n_heads * (dn + dv), r]
  void* o = nullptr;               // [n_tokens, n_heads * dv]: o_h = W_UV_h o_latent_h
  int64_t o_ld = 0;
  SkinnyKernel skinny = SkinnyKernel::tensor_cores;  // as MlaAbsorbParams
  GemmContext* gemm = nullptr;                       // as MlaAbsorbParams
};

// Past the skinny kernels' limits (grouped_gemv.h SkinnyLimits: 4 tokens for the absorb; for
// the expand kMlaSkinnyExpandRows), bf16 activations and kv_b with a GemmContext take one
// strided-batch cuBLASLt product over the heads (the skinny expand keeps up to 64 rows without one): the tiled grouped kernel took 1.8 ms (absorb) and 1.0 ms (expand) a
// layer at 8 x 2048 tokens of V2-Lite, and 42-46 us (absorb) at 16-64 tokens, where cuBLASLt's
// batch should take a few (docs/design/cuda_notes.md).
inline constexpr int64_t kMlaSkinnyExpandRows = 8;

void mla_absorb_query(const MlaAbsorbParams& p, cudaStream_t stream);
void mla_expand_output(const MlaExpandParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
