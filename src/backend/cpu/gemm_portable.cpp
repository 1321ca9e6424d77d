// Portable scalar leaf kernels of the CPU GEMM (see gemm_detail.h for the contracts), used where
// AVX2/FMA/F16C are unavailable. Same tiling and the same exact widening as the AVX2 kernels;
// plain loops the compiler may vectorise as it can.
#include "backend/cpu/gemm_detail.h"

#if !DSI_GEMM_AVX2

#include <bit>
#include <cstring>

namespace dsi::cpu::gemm_detail {

void widen(const Weight& w, int64_t r0, int64_t n_rows, int64_t c0, int64_t n_cols, float* dst,
           int64_t dst_stride) {
  for (int64_t i = 0; i < n_rows; ++i) {
    const int64_t row = r0 + i;
    float* out = dst + i * dst_stride;
    switch (w.w.dtype) {
      case DType::f32:
        std::memcpy(out, w.w.row<const float>(row) + c0, size_t(n_cols) * sizeof(float));
        break;
      case DType::bf16: {
        const auto* src = w.w.row<const uint16_t>(row) + c0;
        for (int64_t j = 0; j < n_cols; ++j) out[j] = bf16_to_f32(src[j]);
        break;
      }
      case DType::f16: {
        const auto* src = w.w.row<const uint16_t>(row) + c0;
        for (int64_t j = 0; j < n_cols; ++j) out[j] = f16_to_f32(src[j]);
        break;
      }
      case DType::f8_e4m3: {
        const auto* src = w.w.row<const uint8_t>(row);
        const float* scales = w.scale.row<const float>((row + w.row_offset) / w.block_rows);
        // fp8_e4m3_to_f32 is exact, so the product with the scale is rounded once.
        for (int64_t j = 0; j < n_cols; ++j)
          out[j] = fp8_e4m3_to_f32(src[c0 + j]) * scales[(c0 + j) / w.block_cols];
        break;
      }
      default: break;  // rejected by check_problem
    }
  }
}

void transpose_to_panel(const float* src, int64_t src_stride, int64_t n_cols, float* panel) {
  const int64_t n_cols8 = (n_cols + 7) & ~int64_t(7);
  for (int64_t p = 0; p < n_cols8; ++p)
    for (int j = 0; j < kNr; ++j) panel[p * kNr + j] = src[j * src_stride + p];
}

bool pack_panel(const Weight&, int64_t, int64_t, int64_t, float*, void*) { return false; }
bool pack_panel_rows(const Weight&, int64_t, int64_t, int64_t, int, float*, int64_t) { return false; }

void micro_tile(int n_tok, int n_out, int64_t kc, const float* x, int64_t x_stride, const float* panel,
                float* y, int64_t y_stride, bool accumulate) {
  float acc[kMr][kNr] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* b = panel + p * kNr;
    for (int i = 0; i < n_tok; ++i) {
      const float a = x[i * x_stride + p];
      for (int j = 0; j < kNr; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < n_tok; ++i) {
    float* out = y + i * y_stride;
    for (int j = 0; j < n_out; ++j) out[j] = accumulate ? out[j] + acc[i][j] : acc[i][j];
  }
}

bool dot_tile(int n_rows, int n_tok, int64_t kc, const void* w, DType w_dtype, int64_t w_stride,
              const Fp8Folds& fp8, const float* x, int64_t x_stride, float* y, int64_t y_stride,
              bool accumulate) {
  const bool is_fp8 = w_dtype == DType::f8_e4m3;
  bool nan = false;
  auto weight = [&](int r, int64_t p) {
    const int64_t i = r * w_stride + p;
    if (!is_fp8) return load_as_f32(w, w_dtype, i);
    // The code times 2^-120 (dtype.h's shift trick) times the folded scale, as the AVX2 kernel;
    // a NaN code reads as +-480 and is reported.
    const uint8_t q = static_cast<const uint8_t*>(w)[i];
    nan |= (q & 0x7f) == 0x7f;
    const float shifted = std::bit_cast<float>((uint32_t(int32_t(int8_t(q))) << 20) & 0x87f00000u);
    return shifted * fp8.fold[r * fp8.n_blocks + p / fp8.block_cols];
  };
  for (int t = 0; t < n_tok; ++t) {
    for (int r = 0; r < n_rows; ++r) {
      // Eight partial sums, like the vector kernel's lanes: shorter rounding chains.
      float part[8] = {};
      const float* xt = x + t * x_stride;
      int64_t p = 0;
      for (; p + 8 <= kc; p += 8)
        for (int l = 0; l < 8; ++l) part[l] += weight(r, p + l) * xt[p + l];
      for (; p < kc; ++p) part[0] += weight(r, p) * xt[p];
      float s = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
      float* out = y + t * y_stride + r;
      *out = accumulate ? *out + s : s;
    }
  }
  return nan;
}

}  // namespace dsi::cpu::gemm_detail

#endif  // !DSI_GEMM_AVX2
