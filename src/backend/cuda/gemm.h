#pragma once
// Linear layers on the GPU through cuBLASLt: y[n, out] = x[n, in] W^T with W stored [out, in]
// (the checkpoint's layout, MATH.md). Three kinds, chosen by the operands' dtypes:
//   bf16 x bf16 -> bf16 or f32, f32 accumulation;
//   f32 x f32 -> f32, strict f32 (CUBLAS_COMPUTE_32F_PEDANTIC: no TF32, no reduced precision);
//   e4m3 x e4m3 -> bf16 or f32: activations quantised per token and 128 columns (fp8.h), the
//     weight per 128x128 block (DeepSeek's weight_scale_inv), through cuBLASLt's block scaling
//     (VEC128_32F for the activations, BLK128x128_32F for the weight), f32 accumulation.
// The FP8 kind needs in and out to be multiples of 128 (fp8_gemm_supported); other FP8 weights
// are widened to bf16 at upload (fp8.h dequantize_fp8) and take the bf16 kind.
// STATUS: on the H200 with cuBLASLt 13.1 the heuristic refuses block scaling (NOT_SUPPORTED) at
// 1, 5, 7 and 33 tokens for every scale layout, and takes 64, 128 and 2048 tokens, where
// kFp8ScaleOrder computes right (docs/design/cuda_notes.md): a prefill GEMM only. The CUDA
// backend therefore dequantises dense FP8 weights to bf16 at upload for now; the bf16 and f32
// kinds are verified on every shape.
//
// A GemmContext owns the cuBLASLt handle and a cache of plans (descriptors and the heuristic's
// algorithm) per shape, dtype, stride and alignment, so a shape pays the heuristic once. Its
// workspace is memory the caller owns (the backend's arena); nothing is allocated per call.
// Not thread-safe: one context per stream / thread.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace dsi::cuda {

struct GemmParams {
  Tensor x;                        // [n, in] bf16, f32 or f8_e4m3 (the weight's dtype)
  const float* x_scale = nullptr;  // f8_e4m3: activation scales in fp8_act_scale_layout(n, in)
  Tensor w;                        // [out, in] bf16, f32 or f8_e4m3; w_transposed: [in, out]
  const float* w_scale = nullptr;  // f8_e4m3: block scales from fp8_weight_scales_for_gemm
  Tensor y;                        // [n, out] f32 or bf16 (f32 inputs: f32); must not overlap x or w
  // W^T stored row-major (bf16 and f32 only): w is [in, out] and W(o, i) = w[i][o], e.g. the
  // rows of a KV cache as the right operand of attention's P V.
  bool w_transposed = false;
  // Strided batch (bf16 and f32): `batch` products, the i-th with x, w and y advanced by i times
  // their strides (elements), in one cuBLASLt call, e.g. MLA's per-head products.
  int batch = 1;
  int64_t x_batch_stride = 0, w_batch_stride = 0, y_batch_stride = 0;
};

// How cuBLASLt's FP8 block scaling reads the scale tensors: the scale mode of the weight and
// the layout of both scale buffers. kFp8ScaleOrder is the one cuBLASLt 13.1 on sm_90 takes and
// computes right with (tests/backend/cuda checks it against every alternative here).
struct Fp8ScaleOrder {
  // Weight scales: false: one per 128x128 block (BLK128x128_32F), block (ob, kb);
  // true: one per row and 128 columns (VEC128_32F), the block scale repeated over its rows.
  bool weight_per_row;
  bool weight_in_fastest;  // (ob or row, kb) at kb + row * ld, the checkpoint's order (else row + kb * ld)
  int weight_pad;          // ld = the fastest dimension rounded up to a multiple of this
  bool act_token_fastest;  // activation scale (token t, group g) at t + g * ld (else g + t * ld)
  int act_pad;
};
inline constexpr Fp8ScaleOrder kFp8ScaleOrder{false, true, 4, true, 4};

class GemmContext {
 public:
  // workspace: device memory for cuBLASLt's split-K and similar (32 MiB suits Hopper); it must
  // outlive the context and not be used by anything else on another stream meanwhile.
  // fp8_order: how this context's FP8 scales are laid out (tests try the alternatives).
  GemmContext(void* workspace, size_t workspace_bytes, const Fp8ScaleOrder& fp8_order = kFp8ScaleOrder);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  size_t n_plans() const;  // shapes seen so far (each cost one heuristic query)

 private:
  friend void gemm(GemmContext& ctx, const GemmParams& p, cudaStream_t stream);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// y = x W^T on `stream`. Checks dtypes, shapes, strides and scale pointers and throws
// dsi::Error naming the problem; throws too when cuBLASLt has no algorithm for the problem.
void gemm(GemmContext& ctx, const GemmParams& p, cudaStream_t stream);

// Whether an [out, in] FP8 weight takes the block-scaled FP8 GEMM (else: widen it to bf16).
bool fp8_gemm_supported(int64_t out_features, int64_t in_features);

// Where quantize_fp8 must put the activation scales for the FP8 GEMM of n tokens of `in` columns.
struct Fp8ActScaleLayout {
  int64_t token_stride;  // scale of token t, group g at t * token_stride + g * group_stride
  int64_t group_stride;
  int64_t n_floats;      // size of the scale buffer
};
Fp8ActScaleLayout fp8_act_scale_layout(int64_t n_tokens, int64_t in_features,
                                       const Fp8ScaleOrder& order = kFp8ScaleOrder);

// The weight's block scales (host, f32 [ceil(rows0 / 128), ceil(in / 128)] with the Weight's
// row_offset, as in the checkpoint) re-laid as the FP8 GEMM reads them; upload the result.
std::vector<float> fp8_weight_scales_for_gemm(const Weight& host_weight, const Fp8ScaleOrder& order = kFp8ScaleOrder);

}  // namespace dsi::cuda
