// cuda_entry.h's functions, the factory's only way into the CUDA backend.
#include "backend/cuda_entry.h"

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device.h"

namespace dsi {

int cuda_device_count() { return cuda::cuda_device_count(); }

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  return std::make_unique<cuda::CudaBackend>(options);
}

}  // namespace dsi
