#pragma once
// Device memory: plain cudaMalloc allocations (never managed memory), a bump arena carved out
// of one allocation for workspaces, and a pinned host staging buffer for uploads.
// None of these types is thread-safe; each belongs to one backend (and its one stream).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace dsi::cuda {

// One cudaMalloc'd block, freed on destruction. Movable, not copyable.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);  // throws dsi::Error when the device is out of memory
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return bytes_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// A bump allocator over one DeviceBuffer: the per-step workspace (activations, GEMM and
// attention scratch). alloc() hands out aligned pieces; reset() takes back everything allocated
// after a mark at once. No per-allocation frees, no cudaMalloc after construction.
class DeviceArena {
 public:
  static constexpr size_t kAlignment = 256;  // cuBLASLt's and TMA's preferred alignment

  explicit DeviceArena(size_t capacity);
  // Throws dsi::Error naming the request and the free space when the arena is full.
  void* alloc(size_t bytes, size_t alignment = kAlignment);
  template <class T>
  T* alloc_n(int64_t n) { return static_cast<T*>(alloc(size_t(n) * sizeof(T))); }

  size_t mark() const { return used_; }
  void reset(size_t mark = 0);  // frees every piece allocated after `mark`
  size_t used() const { return used_; }
  size_t capacity() const { return block_.size(); }
  size_t high_water() const { return high_water_; }

 private:
  DeviceBuffer block_;
  size_t used_ = 0;
  size_t high_water_ = 0;
};

// Pinned host memory through which host -> device uploads (weights, the per-step context) go,
// so the copies are real DMA instead of the driver's own bounce buffer. Two halves alternate:
// the host fills one while the previous chunk's copy runs from the other.
class PinnedStaging {
 public:
  explicit PinnedStaging(size_t bytes);  // cudaMallocHost; bytes is split into two halves
  ~PinnedStaging();
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // Copies host memory of any kind to the device on `stream`, chunk by chunk. Returns when
  // `src` may be reused (the last chunk is staged); the copy completes in stream order.
  void upload(void* dst_device, const void* src_host, size_t bytes, cudaStream_t stream);
  // Copies device memory to host memory of any kind; returns when `dst_host` holds the data.
  void download(void* dst_host, const void* src_device, size_t bytes, cudaStream_t stream);
  size_t chunk_bytes() const { return half_; }

 private:
  unsigned char* host_ = nullptr;
  size_t half_ = 0;
  cudaEvent_t done_[2] = {nullptr, nullptr};  // recorded after the copy out of each half
};

}  // namespace dsi::cuda
