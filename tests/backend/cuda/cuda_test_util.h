#pragma once
// Helpers of the CUDA op tests: device tensors made from host values (converted to their
// dtype), poisoned with NaN before a kernel runs so unwritten elements fail, read back as f32;
// fresh random inputs per run (the seed is printed on failure); and the comparison metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/device.h"
#include "backend/cuda/memory.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace dsi::cuda::test {

// Every test needs a GPU: without one it fails (these tests carry the ctest label `cuda`).
inline void require_gpu() {
  ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: the `cuda`-labelled tests need a GPU";
}

// A device matrix with its own memory (row_stride >= cols allows strided views).
struct DeviceTensor {
  DeviceBuffer buf;
  Tensor t;
  DeviceTensor(DType dtype, int64_t rows, int64_t cols, int64_t row_stride = 0)
      : buf(size_t(std::max<int64_t>(rows, 1) * (row_stride ? row_stride : cols)) * dtype_size(dtype)) {
    t = {buf.data(), dtype, rows, cols, row_stride ? row_stride : cols};
  }
  size_t bytes() const { return buf.size(); }
  // Fills every byte with 0xff: NaN in f32, bf16 and e4m3, -1 in integers.
  void poison() { DSI_CUDA_CHECK(cudaMemset(buf.data(), 0xff, buf.size())); }
};

// Host values of a [rows, cols] matrix stored densely in `dtype`'s bytes with the given stride.
inline std::vector<unsigned char> encode(const std::vector<float>& v, DType dtype, int64_t rows, int64_t cols,
                                         int64_t stride) {
  std::vector<unsigned char> out(size_t(std::max<int64_t>(rows, 1) * stride) * dtype_size(dtype), 0xff);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float f = v[size_t(r * cols + c)];
      unsigned char* p = out.data() + size_t(r * stride + c) * dtype_size(dtype);
      switch (dtype) {
        case DType::f32: std::memcpy(p, &f, 4); break;
        case DType::bf16: { uint16_t h = f32_to_bf16(f); std::memcpy(p, &h, 2); break; }
        case DType::f8_e4m3: *p = f32_to_fp8_e4m3(f); break;
        default: ADD_FAILURE() << "encode: unsupported dtype";
      }
    }
  return out;
}

// Uploads dense host values [rows, cols] (row-major) into a fresh device tensor.
inline DeviceTensor upload(const std::vector<float>& v, DType dtype, int64_t rows, int64_t cols, int64_t stride = 0) {
  DeviceTensor d(dtype, rows, cols, stride);
  auto bytes = encode(v, dtype, rows, cols, d.t.row_stride);
  DSI_CUDA_CHECK(cudaMemcpy(d.buf.data(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  return d;
}

inline void upload_raw(DeviceTensor& d, const void* src, size_t bytes) {
  DSI_CUDA_CHECK(cudaMemcpy(d.buf.data(), src, bytes, cudaMemcpyHostToDevice));
}

// Reads a device tensor back as dense f32 [rows, cols] (waits for the device, checks faults).
inline std::vector<float> download(const Tensor& t) {
  DSI_CUDA_CHECK(cudaDeviceSynchronize());
  const size_t es = dtype_size(t.dtype);
  std::vector<unsigned char> raw(size_t(t.rows > 0 ? (t.rows - 1) * t.row_stride + t.cols : 0) * es);
  if (!raw.empty()) DSI_CUDA_CHECK(cudaMemcpy(raw.data(), t.data, raw.size(), cudaMemcpyDeviceToHost));
  std::vector<float> out(size_t(t.rows * t.cols));
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c) out[size_t(r * t.cols + c)] = load_as_f32(raw.data(), t.dtype, r * t.row_stride + c);
  return out;
}

// The values a dtype can hold, for references computed from what the device really holds.
inline std::vector<float> round_to(const std::vector<float>& v, DType dtype) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::bf16) out[i] = bf16_to_f32(f32_to_bf16(v[i]));
    else if (dtype == DType::f8_e4m3) out[i] = fp8_e4m3_to_f32(f32_to_fp8_e4m3(v[i]));
    else out[i] = v[i];
  }
  return out;
}

struct Rng {
  uint64_t seed;
  std::mt19937_64 gen;
  Rng() : seed(std::random_device{}() | uint64_t(std::random_device{}()) << 32), gen(seed) {}
  std::vector<float> normal(size_t n, float sigma = 1.0f) {
    std::normal_distribution<float> d(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = d(gen);
    return v;
  }
  std::vector<float> uniform(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(gen);
    return v;
  }
  std::string trace() const { return "random seed " + std::to_string(seed); }
};

// ||got - ref|| / ||ref|| and max |got - ref| / max |ref|; NaN/Inf in got where ref is finite
// counted separately (they never pass).
struct Errors {
  double normalized = 0, max_rel = 0, max_abs = 0;
  int64_t n_bad = 0;  // non-finite outputs where the reference is finite
  std::string str() const {
    return "normalised " + std::to_string(normalized) + ", max abs " + std::to_string(max_abs) +
           " (relative to max |ref| " + std::to_string(max_rel) + "), non-finite " + std::to_string(n_bad);
  }
};

inline Errors compare(const std::vector<float>& got, const std::vector<double>& ref) {
  Errors e;
  double num = 0, den = 0, max_ref = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i]) && std::isfinite(ref[i])) {
      ++e.n_bad;
      continue;
    }
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
    max_ref = std::max(max_ref, std::fabs(ref[i]));
  }
  e.normalized = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  e.max_rel = max_ref > 0 ? e.max_abs / max_ref : e.max_abs;
  return e;
}

inline Errors compare(const std::vector<float>& got, const std::vector<float>& ref) {
  return compare(got, std::vector<double>(ref.begin(), ref.end()));
}

// Unit roundoffs: f32 2^-24, bf16 2^-8 (round to nearest: half an ulp of 2^-7).
constexpr double kF32Eps = 1.0 / (1 << 24);
constexpr double kBf16Eps = 1.0 / (1 << 8);

}  // namespace dsi::cuda::test
