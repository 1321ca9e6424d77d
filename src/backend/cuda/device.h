#pragma once
// What the machine has: the number of CUDA devices (0 without a driver or GPU, never a crash)
// and each device's properties, read once when a backend starts.
#include <cstdint>
#include <string>

namespace dsi::cuda {

// Number of usable CUDA devices; 0 when there is no driver, no device, or the driver is older
// than this build's runtime. Never throws.
int cuda_device_count() noexcept;

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability
  int n_sms = 0;
  int64_t total_memory = 0;  // bytes
  int64_t free_memory = 0;   // bytes, when queried
  int64_t l2_bytes = 0;
  int64_t smem_per_block_optin = 0;  // the most dynamic shared memory a block may ask for
  int driver_version = 0;            // e.g. 13000 for 13.0
  int runtime_version = 0;
  size_t cublaslt_version = 0;  // e.g. 130100 for 13.1.0
};

// Properties of device `index` (also makes it the calling thread's current device).
// Throws dsi::Error when it does not exist.
DeviceInfo query_device(int index);
// One line for logs: "NVIDIA H200, sm_90, 132 SMs, 139.7 GiB, driver 13.0, runtime 13.0, cuBLASLt 13.1.0".
std::string describe(const DeviceInfo& info);

}  // namespace dsi::cuda
