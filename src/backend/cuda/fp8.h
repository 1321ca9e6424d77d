#pragma once
// FP8 e4m3 kernels: quantising activations per token and 128-column group (the input side of
// the block-scaled FP8 GEMM, gemm.h), and widening block-scaled FP8 weights to bf16 / f32 (the
// fallback for shapes the FP8 GEMM does not take, and for tests). Pointers are device memory;
// host wrappers check and throw dsi::Error before launching on `stream`.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace dsi::cuda {

constexpr int kFp8Group = 128;           // columns per activation scale (DeepSeek's act_quant)
constexpr float kFp8E4m3Max = 448.0f;    // largest finite e4m3 value

struct Fp8QuantizeParams {
  Tensor x;                     // [n, k] f32 or bf16, k a multiple of kFp8Group
  Tensor q;                     // [n, k] f8_e4m3
  float* scales;                // scale of token t, group g at t * scale_token_stride + g * scale_group_stride
  int64_t scale_token_stride;   // (gemm.h's fp8_act_scale_layout gives the GEMM's layout)
  int64_t scale_group_stride;
};
// Per token t and group g of 128 columns: s = amax|x| / 448 (1 where the group is all zeros),
// q = e4m3(x / s) rounded to nearest even and saturated, so x ~= q * s.
void quantize_fp8(const Fp8QuantizeParams& p, cudaStream_t stream);

struct Fp8DequantizeParams {
  Weight w;    // [rows, cols] f8_e4m3 with f32 block scales (w.scale, on the device)
  Tensor out;  // [rows, cols] f32 or bf16
};
// out = q * block scale (MATH.md "FP8 weights"), rounded once to out's dtype.
void dequantize_fp8(const Fp8DequantizeParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
