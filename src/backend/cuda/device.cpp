#include "backend/cuda/device.h"

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include "backend/cuda/check.h"
#include "core/error.h"

namespace dsi::cuda {

int cuda_device_count() noexcept {
  int n = 0;
  // The static runtime answers cudaErrorNoDevice / cudaErrorInsufficientDriver without a
  // driver; any error means no usable device.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky last error for later calls
    return 0;
  }
  return n;
}

DeviceInfo query_device(int index) {
  const int n = cuda_device_count();
  if (index < 0 || index >= n) fail("CUDA device {} does not exist ({} found)", index, n);
  DSI_CUDA_CHECK(cudaSetDevice(index));
  cudaDeviceProp p{};
  DSI_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  DeviceInfo info;
  info.index = index;
  info.name = p.name;
  info.cc_major = p.major;
  info.cc_minor = p.minor;
  info.n_sms = p.multiProcessorCount;
  info.total_memory = int64_t(p.totalGlobalMem);
  info.l2_bytes = p.l2CacheSize;
  info.smem_per_block_optin = int64_t(p.sharedMemPerBlockOptin);
  size_t free_b = 0, total_b = 0;
  DSI_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  info.free_memory = int64_t(free_b);
  DSI_CUDA_CHECK(cudaDriverGetVersion(&info.driver_version));
  DSI_CUDA_CHECK(cudaRuntimeGetVersion(&info.runtime_version));
  info.cublaslt_version = cublasLtGetVersion();
  return info;
}

std::string describe(const DeviceInfo& d) {
  return fmt::format("{}, sm_{}{}, {} SMs, {:.1f} GiB ({:.1f} free), L2 {} MiB, driver {}.{}, runtime {}.{}, cuBLASLt {}.{}.{}",
                     d.name, d.cc_major, d.cc_minor, d.n_sms, double(d.total_memory) / double(1 << 30),
                     double(d.free_memory) / double(1 << 30), d.l2_bytes >> 20, d.driver_version / 1000,
                     d.driver_version % 1000 / 10, d.runtime_version / 1000, d.runtime_version % 1000 / 10,
                     d.cublaslt_version / 10000, d.cublaslt_version / 100 % 100, d.cublaslt_version % 100);
}

}  // namespace dsi::cuda
