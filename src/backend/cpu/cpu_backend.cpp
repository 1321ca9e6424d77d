#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/gemm.h"
#include "core/aligned_buffer.h"
#include "core/error.h"
#include "core/host_memory.h"

namespace dsi::cpu {

Buffer CpuBackend::alloc(DType dtype, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) fail("alloc: negative shape [{}, {}]", rows, cols);
  auto mem = std::make_shared<AlignedBuffer>(size_t(rows * cols) * dtype_size(dtype));
  return {Tensor::matrix(mem->data(), dtype, rows, cols), mem};
}

void CpuBackend::retain(const std::shared_ptr<void>& owner) {
  if (owner && std::find(owners_.begin(), owners_.end(), owner) == owners_.end()) owners_.push_back(owner);
}

// The GEMM reads bf16 / f16 / fp8 weights in place (widening tile by tile), so the host memory
// is the backend's memory: no copy, the owner is kept instead.
Weight CpuBackend::upload(const Weight& host, const std::shared_ptr<void>& host_owner) {
  retain(host_owner);
  return host;
}

Tensor CpuBackend::upload_vector(const Tensor& host, const std::shared_ptr<void>& host_owner) {
  if (host.dtype != DType::f32) fail("upload_vector: expected f32, got {}", dtype_name(host.dtype));
  retain(host_owner);
  return host;
}

DeviceMemory CpuBackend::device_memory() {
  const HostMemory m = host_memory();
  return {m.total_bytes, m.available_bytes};
}

ExpertWeight CpuBackend::upload_experts(std::span<const Weight> host, const std::shared_ptr<void>& host_owner) {
  retain(host_owner);
  ExpertWeight w;
  w.experts.assign(host.begin(), host.end());
  return w;
}

namespace {
// Byte address of row r (Tensor::row counts in elements of T).
char* row_bytes_at(const Tensor& t, int64_t r) {
  return static_cast<char*>(t.data) + r * t.row_stride * int64_t(dtype_size(t.dtype));
}
}  // namespace

void CpuBackend::copy_from_host(const void* src, Tensor dst) {
  const size_t row_bytes = size_t(dst.cols) * dtype_size(dst.dtype);
  if (dst.contiguous()) {
    if (dst.numel()) std::memcpy(dst.data, src, row_bytes * size_t(dst.rows));
    return;
  }
  for (int64_t r = 0; r < dst.rows; ++r)
    std::memcpy(row_bytes_at(dst, r), static_cast<const char*>(src) + size_t(r) * row_bytes, row_bytes);
}

void CpuBackend::copy_to_host(const Tensor& src, void* dst) {
  const size_t row_bytes = size_t(src.cols) * dtype_size(src.dtype);
  for (int64_t r = 0; r < src.rows; ++r)
    std::memcpy(static_cast<char*>(dst) + size_t(r) * row_bytes, row_bytes_at(src, r), row_bytes);
}

float* CpuBackend::mla_scratch(int64_t n_floats) {
  if (mla_scratch_.size() < size_t(n_floats) * 4) mla_scratch_ = AlignedBuffer(size_t(n_floats) * 4);
  return mla_scratch_.as<float>();
}

void CpuBackend::linear(const Tensor& x, const Weight& w, Tensor out) { cpu::linear(x, w, out); }

}  // namespace dsi::cpu
