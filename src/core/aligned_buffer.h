#pragma once
// Heap memory aligned for vector loads (64 bytes: one cache line, one AVX-512 register).
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace dsi {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n_bytes) : size_(n_bytes) {
    size_t rounded = (n_bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    data_.reset(static_cast<std::byte*>(p));
  }
  std::byte* data() const { return data_.get(); }
  template <class T>
  T* as() const { return reinterpret_cast<T*>(data_.get()); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
};

}  // namespace dsi
