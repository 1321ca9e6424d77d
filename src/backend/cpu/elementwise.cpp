// Row-wise ops of the CPU backend: embedding, RMSNorm, rotary embedding, SiLU gating, add,
// row gather. Shapes and dtypes were checked by the op layer (backend/ops.cpp).
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace dsi::cpu {

void CpuBackend::embedding(const Weight& table, const StepContext& ctx, Tensor out) {
  const int32_t* ids = static_cast<const int32_t*>(ctx.token_ids.data);
  const int64_t n = ctx.n_tokens(), d = table.cols();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float* dst = out.row<float>(i);
    const int64_t base = int64_t(ids[i]) * table.w.row_stride;
    for (int64_t j = 0; j < d; ++j) dst[j] = load_as_f32(table.w.data, table.w.dtype, base + j);
  }
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) {
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

void CpuBackend::rope(Tensor x, const RopeParams& rp, const StepContext& ctx) {
  const int64_t half = rp.inv_freq.numel();
  const float* inv_freq = static_cast<const float*>(rp.inv_freq.data);
  const int32_t* positions = static_cast<const int32_t*>(ctx.positions.data);
  const int n_heads = rp.n_heads;
  const int64_t head_stride = rp.head_stride, rope_offset = rp.rope_offset;
  const float attention_factor = rp.attention_factor;
#pragma omp parallel
  {
    std::vector<float> cs(static_cast<size_t>(2 * half));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < x.rows; ++r) {
      const double pos = positions[r];
      for (int64_t i = 0; i < half; ++i) {
        const double t = pos * double(inv_freq[i]);
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
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < gate.rows; ++r) {
    const float* g = gate.row<const float>(r);
    const float* u = up.row<const float>(r);
    float* o = out.row<float>(r);
    for (int64_t j = 0; j < gate.cols; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
  }
}

void CpuBackend::add(Tensor x, const Tensor& y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    float* a = x.row<float>(r);
    const float* b = y.row<const float>(r);
    for (int64_t j = 0; j < x.cols; ++j) a[j] += b[j];
  }
}

void CpuBackend::gather_rows(const Tensor& x, const Tensor& rows, Tensor out) {
  const int32_t* index = static_cast<const int32_t*>(rows.data);
  for (int64_t i = 0; i < out.rows; ++i)
    std::memcpy(out.row<float>(i), x.row<const float>(index[i]), size_t(x.cols) * 4);
}

}  // namespace dsi::cpu
