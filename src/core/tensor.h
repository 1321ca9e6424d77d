#pragma once
// Non-owning 2-D views over memory a backend owns. Activations are [rows, cols] with a row
// stride (so a view can select columns, e.g. one head's slice); everything per-head is laid
// out head-major inside a row: [n_tokens, n_heads * head_dim].
#include <cassert>
#include <cstdint>

#include "core/dtype.h"

namespace dsi {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  // in elements

  static Tensor matrix(void* data, DType dtype, int64_t rows, int64_t cols) {
    return {data, dtype, rows, cols, cols};
  }
  int64_t numel() const { return rows * cols; }
  bool contiguous() const { return row_stride == cols || rows <= 1; }

  template <class T>
  T* row(int64_t r) const {
    assert(r >= 0 && r < rows);
    return static_cast<T*>(data) + r * row_stride;
  }
  // Rows [r0, r0 + n).
  Tensor slice_rows(int64_t r0, int64_t n) const {
    assert(r0 >= 0 && n >= 0 && r0 + n <= rows);
    Tensor t = *this;
    t.data = static_cast<char*>(data) + r0 * row_stride * int64_t(dtype_size(dtype));
    t.rows = n;
    return t;
  }
  // Columns [c0, c0 + n) of every row.
  Tensor slice_cols(int64_t c0, int64_t n) const {
    assert(c0 >= 0 && n >= 0 && c0 + n <= cols);
    Tensor t = *this;
    t.data = static_cast<char*>(data) + c0 * int64_t(dtype_size(dtype));
    t.cols = n;
    return t;
  }
};

// A weight matrix [rows = out features, cols = in features], applied as y = W x. FP8 weights
// carry one float32 scale per block_rows x block_cols block (weight_scale_inv in the
// checkpoint): W[i][j] = q[i][j] * scale[i / block_rows][j / block_cols].
struct Weight {
  Tensor w;
  Tensor scale;           // f32 [ceil(rows0 / block_rows), ceil(cols / block_cols)], fp8 only
  int64_t row_offset = 0;  // first row of w inside the matrix that scale describes
  int block_rows = 128;
  int block_cols = 128;

  int64_t rows() const { return w.rows; }
  int64_t cols() const { return w.cols; }
  bool quantized() const { return scale.data != nullptr; }
  float block_scale(int64_t row, int64_t col) const {
    return scale.row<const float>((row + row_offset) / block_rows)[col / block_cols];
  }
  // Rows [r0, r0 + n) as a weight of its own (a head's slice of kv_b_proj, say).
  Weight slice_rows(int64_t r0, int64_t n) const {
    Weight s = *this;
    s.w = w.slice_rows(r0, n);
    s.row_offset = row_offset + r0;
    return s;
  }
  // Element (r, c) as float32; slow path for tests and reference code.
  float at(int64_t r, int64_t c) const {
    float v = load_as_f32(w.data, w.dtype, r * w.row_stride + c);
    return quantized() ? v * block_scale(r, c) : v;
  }
};

}  // namespace dsi
