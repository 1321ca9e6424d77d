// cuda_entry.h's functions, the factory's only way into the CUDA backend.
#include "backend/cuda_entry.h"

#include "backend/cuda/device.h"
#include "core/error.h"

namespace dsi {

int cuda_device_count() { return cuda::cuda_device_count(); }

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  // The kernels exist (this library) but are not yet behind the Backend interface.
  fail("--device cuda (GPU {}): the CUDA backend is not wired to the op interface in this build yet; use --device cpu",
       options.device_index);
}

}  // namespace dsi
