// Row-wise ops of the CPU backend: embedding, RMSNorm, rotary embedding, SiLU gating, add.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace dsi::cpu {

namespace {

void require_f32(const Tensor& t, const char* op, const char* name) {
  if (t.dtype != DType::f32) fail("{}: {} must be f32, got {}", op, name, dtype_name(t.dtype));
}

void require_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  if (a.rows != b.rows || a.cols != b.cols)
    fail("{}: shape mismatch [{}, {}] vs [{}, {}]", op, a.rows, a.cols, b.rows, b.cols);
}

}  // namespace

void CpuBackend::embedding(const Weight& table, std::span<const int32_t> ids, Tensor out) {
  require_f32(out, "embedding", "out");
  if (table.quantized()) fail("embedding: quantised tables are not supported");
  if (out.rows != int64_t(ids.size()) || out.cols != table.cols())
    fail("embedding: out is [{}, {}], expected [{}, {}]", out.rows, out.cols, ids.size(), table.cols());
  for (int32_t id : ids)
    if (id < 0 || id >= table.rows()) fail("embedding: id {} outside [0, {})", id, table.rows());
  const int64_t n = int64_t(ids.size()), d = table.cols();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float* dst = out.row<float>(i);
    const int64_t base = int64_t(ids[size_t(i)]) * table.w.row_stride;
    for (int64_t j = 0; j < d; ++j) dst[j] = load_as_f32(table.w.data, table.w.dtype, base + j);
  }
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) {
  require_f32(x, "rms_norm", "x");
  require_f32(out, "rms_norm", "out");
  require_f32(weight, "rms_norm", "weight");
  require_same_shape(x, out, "rms_norm");
  if (weight.numel() != x.cols) fail("rms_norm: weight has {} values for rows of {}", weight.numel(), x.cols);
  const int64_t d = x.cols;
  const float* w = weight.row<const float>(0);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* src = x.row<const float>(r);
    float* dst = out.row<float>(r);
    // Sum of squares in double: the reference computes it in float32 or float64, and double
    // keeps this one reduction from depending on the vector width.
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(src[j]) * double(src[j]);
    const float inv = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
    for (int64_t j = 0; j < d; ++j) dst[j] = w[j] * (src[j] * inv);
  }
}

void CpuBackend::rope(Tensor x, int n_heads, int64_t head_stride, int64_t rope_offset,
                      std::span<const int32_t> positions, std::span<const float> inv_freq, float attention_factor) {
  require_f32(x, "rope", "x");
  const int64_t half = int64_t(inv_freq.size());
  if (int64_t(positions.size()) != x.rows) fail("rope: {} positions for {} rows", positions.size(), x.rows);
  if (n_heads < 1 || (n_heads - 1) * head_stride + rope_offset + 2 * half > x.cols)
    fail("rope: {} heads of stride {} with rope dims [{}, {}) exceed the row of {}", n_heads, head_stride,
         rope_offset, rope_offset + 2 * half, x.cols);
#pragma omp parallel
  {
    std::vector<float> cs(static_cast<size_t>(2 * half));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < x.rows; ++r) {
      const double pos = positions[size_t(r)];
      for (int64_t i = 0; i < half; ++i) {
        const double t = pos * double(inv_freq[size_t(i)]);
        cs[size_t(2 * i)] = float(std::cos(t)) * attention_factor;
        cs[size_t(2 * i + 1)] = float(std::sin(t)) * attention_factor;
      }
      float* row = x.row<float>(r);
      for (int h = 0; h < n_heads; ++h) {
        float* v = row + h * head_stride + rope_offset;
        for (int64_t i = 0; i < half; ++i) {
          const float c = cs[size_t(2 * i)], s = cs[size_t(2 * i + 1)];
          const float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * c - b * s;
          v[2 * i + 1] = a * s + b * c;
        }
      }
    }
  }
}

void CpuBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor out) {
  require_f32(gate, "silu_mul", "gate");
  require_f32(up, "silu_mul", "up");
  require_f32(out, "silu_mul", "out");
  require_same_shape(gate, up, "silu_mul");
  require_same_shape(gate, out, "silu_mul");
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < gate.rows; ++r) {
    const float* g = gate.row<const float>(r);
    const float* u = up.row<const float>(r);
    float* o = out.row<float>(r);
    for (int64_t j = 0; j < gate.cols; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
  }
}

void CpuBackend::add(Tensor x, const Tensor& y) {
  require_f32(x, "add", "x");
  require_f32(y, "add", "y");
  require_same_shape(x, y, "add");
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    float* a = x.row<float>(r);
    const float* b = y.row<const float>(r);
    for (int64_t j = 0; j < x.cols; ++j) a[j] += b[j];
  }
}

}  // namespace dsi::cpu
