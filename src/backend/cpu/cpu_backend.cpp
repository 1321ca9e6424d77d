#include "backend/cpu/cpu_backend.h"

#include <cstring>

#include "backend/cpu/gemm.h"
#include "core/aligned_buffer.h"
#include "core/error.h"

namespace dsi {

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

namespace cpu {

Buffer CpuBackend::alloc(DType dtype, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) fail("alloc: negative shape [{}, {}]", rows, cols);
  auto mem = std::make_shared<AlignedBuffer>(size_t(rows * cols) * dtype_size(dtype));
  return {Tensor::matrix(mem->data(), dtype, rows, cols), mem};
}

void CpuBackend::to_host(const Tensor& src, float* dst) {
  if (src.dtype != DType::f32) fail("to_host: expected an f32 tensor, got {}", dtype_name(src.dtype));
  for (int64_t r = 0; r < src.rows; ++r)
    std::memcpy(dst + r * src.cols, src.row<const float>(r), size_t(src.cols) * 4);
}

void CpuBackend::linear(const Tensor& x, const Weight& w, Tensor out) { cpu::linear(x, w, out); }

}  // namespace cpu
}  // namespace dsi
