#include "backend/cuda/memory.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "backend/cuda/check.h"
#include "core/error.h"

namespace dsi::cuda {

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  cudaError_t e = cudaMalloc(&data_, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    fail("CUDA: cannot allocate {:.1f} MiB of device memory ({}; {:.1f} MiB free of {:.1f})",
         double(bytes) / 1048576.0, cudaGetErrorString(e), double(free_b) / 1048576.0, double(total_b) / 1048576.0);
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) (void)cudaFree(data_);  // no throw from a destructor; a failed free leaks
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) (void)cudaFree(data_);
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

DeviceArena::DeviceArena(size_t capacity) : block_(capacity) {}

void* DeviceArena::alloc(size_t bytes, size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) fail("DeviceArena: alignment {} is not a power of two", alignment);
  // The block itself is 256-byte aligned (cudaMalloc), so aligning the offset aligns the address.
  const size_t start = (used_ + alignment - 1) & ~(alignment - 1);
  if (start > capacity() || bytes > capacity() - start)
    fail("DeviceArena: {} bytes requested with {} of {} in use", bytes, used_, capacity());
  used_ = start + bytes;
  high_water_ = std::max(high_water_, used_);
  return static_cast<unsigned char*>(block_.data()) + start;
}

void DeviceArena::reset(size_t mark) {
  if (mark > used_) fail("DeviceArena: reset to {} beyond the {} bytes in use", mark, used_);
  used_ = mark;
}

PinnedStaging::PinnedStaging(size_t bytes) : half_(std::max<size_t>(bytes / 2, 1)) {
  DSI_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_), 2 * half_));
  for (auto& e : done_) DSI_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
}

PinnedStaging::~PinnedStaging() {
  for (auto& e : done_)
    if (e) (void)cudaEventDestroy(e);
  if (host_) (void)cudaFreeHost(host_);
}

void PinnedStaging::upload(void* dst_device, const void* src_host, size_t bytes, cudaStream_t stream) {
  auto* dst = static_cast<unsigned char*>(dst_device);
  const auto* src = static_cast<const unsigned char*>(src_host);
  int k = 0;
  for (size_t off = 0; off < bytes; off += half_, k ^= 1) {
    const size_t n = std::min(half_, bytes - off);
    DSI_CUDA_CHECK(cudaEventSynchronize(done_[k]));  // the copy out of this half has finished
    std::memcpy(host_ + size_t(k) * half_, src + off, n);
    DSI_CUDA_CHECK(cudaMemcpyAsync(dst + off, host_ + size_t(k) * half_, n, cudaMemcpyHostToDevice, stream));
    DSI_CUDA_CHECK(cudaEventRecord(done_[k], stream));
  }
}

void PinnedStaging::download(void* dst_host, const void* src_device, size_t bytes, cudaStream_t stream) {
  auto* dst = static_cast<unsigned char*>(dst_host);
  const auto* src = static_cast<const unsigned char*>(src_device);
  for (size_t off = 0; off < bytes; off += half_) {
    const size_t n = std::min(half_, bytes - off);
    DSI_CUDA_CHECK(cudaMemcpyAsync(host_, src + off, n, cudaMemcpyDeviceToHost, stream));
    DSI_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::memcpy(dst + off, host_, n);
  }
}

}  // namespace dsi::cuda
