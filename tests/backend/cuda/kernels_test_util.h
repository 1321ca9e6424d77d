#pragma once
// Helpers of the attention and MoE kernel tests: device memory filled from host values (in a
// dtype's bytes), poisoned before a kernel runs so unwritten elements fail as NaN, read back as
// f32; fresh random inputs every run (the seed is printed on failure); comparison metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/device.h"
#include "core/dtype.h"

namespace dsi::cuda::ktest {

// bf16 holds 8 significant bits: rounding to nearest errs by at most u = 2^-8 relative.
constexpr double kBf16U = 1.0 / 256;
constexpr double kF32U = 1.0 / (1 << 24);

inline void require_gpu() { ASSERT_GT(cuda_device_count(), 0) << "the `cuda`-labelled tests need a GPU"; }

// Raw device bytes, freed on destruction.
class DeviceMem {
 public:
  explicit DeviceMem(size_t bytes) : bytes_(std::max<size_t>(bytes, 16)) { DSI_CUDA_CHECK(cudaMalloc(&p_, bytes_)); }
  ~DeviceMem() { cudaFree(p_); }
  DeviceMem(DeviceMem&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  DeviceMem& operator=(DeviceMem&&) = delete;
  void* get() const { return p_; }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  // Every byte 0xff: NaN in f32 / bf16 / e4m3, -1 in integers.
  void poison() { DSI_CUDA_CHECK(cudaMemset(p_, 0xff, bytes_)); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_;
};

// Host floats encoded as `dtype` (bf16 / f8 round to nearest even).
inline std::vector<unsigned char> encode(const std::vector<float>& v, DType dtype) {
  std::vector<unsigned char> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char* p = out.data() + i * dtype_size(dtype);
    if (dtype == DType::f32) {
      std::memcpy(p, &v[i], 4);
    } else if (dtype == DType::bf16) {
      const uint16_t h = f32_to_bf16(v[i]);
      std::memcpy(p, &h, 2);
    } else {
      *p = f32_to_fp8_e4m3(v[i]);
    }
  }
  return out;
}

// The values `dtype` holds for v: what the device sees, so the CPU oracle gets the same inputs.
inline std::vector<float> round_to(std::vector<float> v, DType dtype) {
  for (auto& x : v) {
    if (dtype == DType::bf16) x = bf16_to_f32(f32_to_bf16(x));
    else if (dtype == DType::f8_e4m3) x = fp8_e4m3_to_f32(f32_to_fp8_e4m3(x));
  }
  return v;
}

inline DeviceMem upload(const std::vector<float>& v, DType dtype) {
  auto bytes = encode(v, dtype);
  DeviceMem d(bytes.size());
  DSI_CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  return d;
}

template <class T>
DeviceMem upload_raw(const std::vector<T>& v) {
  DeviceMem d(v.size() * sizeof(T));
  DSI_CUDA_CHECK(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// Waits for the device (surfacing kernel faults) and reads n elements of `dtype` as f32.
inline std::vector<float> download(const DeviceMem& d, DType dtype, size_t n) {
  DSI_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<unsigned char> raw(n * dtype_size(dtype));
  DSI_CUDA_CHECK(cudaMemcpy(raw.data(), d.get(), raw.size(), cudaMemcpyDeviceToHost));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = load_as_f32(raw.data(), dtype, int64_t(i));
  return out;
}

template <class T>
std::vector<T> download_raw(const DeviceMem& d, size_t n) {
  DSI_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> out(n);
  DSI_CUDA_CHECK(cudaMemcpy(out.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
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
  int uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }
  std::string trace() const { return "random seed " + std::to_string(seed); }
};

// ||got - ref|| / ||ref||, max |got - ref| / max |ref|, and the count of non-finite outputs
// (which never pass; the reference is always finite here).
struct Errors {
  double normalized = 0, max_rel = 0;
  int64_t n_bad = 0;
  std::string str() const {
    return "normalised " + std::to_string(normalized) + ", max abs / max |ref| " + std::to_string(max_rel) +
           ", non-finite " + std::to_string(n_bad);
  }
};

inline Errors compare(const std::vector<float>& got, const std::vector<float>& ref) {
  Errors e;
  double num = 0, den = 0, max_ref = 0, max_abs = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++e.n_bad;
      continue;
    }
    const double d = double(got[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * ref[i];
    max_abs = std::max(max_abs, std::fabs(d));
    max_ref = std::max(max_ref, std::fabs(double(ref[i])));
  }
  e.normalized = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  e.max_rel = max_ref > 0 ? max_abs / max_ref : max_abs;
  return e;
}

// Both metrics within their bounds and every element finite.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& ref, double normalized_tol,
                         double max_rel_tol, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const Errors e = compare(got, ref);
  EXPECT_EQ(e.n_bad, 0) << what << ": " << e.str();
  EXPECT_LE(e.normalized, normalized_tol) << what << ": " << e.str();
  EXPECT_LE(e.max_rel, max_rel_tol) << what << ": " << e.str();
  // One line per case for the device log's table.
  std::printf("[result] %-58s norm %.3e  max %.3e  bad %lld\n", what.c_str(), e.normalized, e.max_rel,
              static_cast<long long>(e.n_bad));
}

}  // namespace dsi::cuda::ktest
