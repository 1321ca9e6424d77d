#pragma once
// The CUDA backend's entry points, for the factory only. Defined by the CUDA backend library
// (src/backend/cuda/), which exists only in builds with DSINFER_CUDA (it defines DSINFER_HAVE_CUDA); the factory references
// these only under that compile flag.
#include <memory>

#include "backend/backend_factory.h"

namespace dsi {

#ifdef DSINFER_HAVE_CUDA
// GPUs visible to this process (0 when the driver finds none).
int cuda_device_count();
// A CudaBackend on options.device_index; options.dtype / kv_cache_dtype already resolved
// ("float32" or "bfloat16").
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);
#endif

}  // namespace dsi
