#pragma once
// How cuBLASLt's FP8 block scaling reads its scale tensors, as a value, so that a device test
// can check the convention gemm.cpp uses against the alternatives (tests/backend/cuda).
#include <vector>

#include "backend/cuda/gemm.h"

namespace dsi::cuda::detail {

struct Fp8ScaleOrder {
  bool act_token_fastest;  // activation scale (token t, group g): t + g * ld (else g + t * ld)
  int act_pad;             // ld = the fastest dimension rounded up to a multiple of this
  bool weight_in_fastest;  // weight block (ob, kb): kb + ob * ld, the checkpoint's order (else ob + kb * ld)
  int weight_pad;
};

// The scales' layout as cuBLASLt reads them (column-major, outer dimension fastest for the
// 1-D activation scales, 16-byte aligned leading dimensions).
inline constexpr Fp8ScaleOrder kFp8ScaleOrder{true, 4, true, 4};

Fp8ActScaleLayout fp8_act_scale_layout(int64_t n_tokens, int64_t in_features, const Fp8ScaleOrder& order);
std::vector<float> fp8_weight_scales(const Weight& w, const Fp8ScaleOrder& order);

}  // namespace dsi::cuda::detail
