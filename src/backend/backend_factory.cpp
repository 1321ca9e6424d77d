#include "backend/backend_factory.h"

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda_entry.h"
#include "core/error.h"
#include "core/log.h"

namespace dsi {

namespace {

// "float32" / "bfloat16" for the device, from "auto" or the user's choice.
std::string resolve_dtype(const std::string& text, const char* flag, DeviceKind device) {
  if (text != "auto" && text != "float32" && text != "bfloat16")
    fail("{} {} is not supported (auto, float32, bfloat16)", flag, text);
  if (text != "auto") return text;
  return device == DeviceKind::device_cuda ? "bfloat16" : "float32";
}

}  // namespace

DeviceKind resolve_device(DeviceKind wanted) {
  if (wanted == DeviceKind::device_cpu) return wanted;
#ifdef DSINFER_HAVE_CUDA
  const int n_gpus = cuda_device_count();
  if (wanted == DeviceKind::device_cuda) {
    if (n_gpus == 0) fail("--device cuda: no CUDA GPU is visible to this process");
    return wanted;
  }
  return n_gpus > 0 ? DeviceKind::device_cuda : DeviceKind::device_cpu;
#else
  if (wanted == DeviceKind::device_cuda)
    fail("--device cuda: this build has no CUDA support (configure with -DDSINFER_CUDA=ON)");
  return DeviceKind::device_cpu;
#endif
}

bool runs_on_gpu(const BackendOptions& o) noexcept {
  try {
    return resolve_device(o.device) == DeviceKind::device_cuda;
  } catch (...) {
    return false;
  }
}

DeviceKind parse_device(const std::string& text) {
  if (text == "auto") return DeviceKind::device_auto;
  if (text == "cpu") return DeviceKind::device_cpu;
  if (text == "cuda") return DeviceKind::device_cuda;
  fail("--device {} is not supported (auto, cpu, cuda)", text);
}

const char* device_name(DeviceKind d) {
  switch (d) {
    case DeviceKind::device_auto: return "auto";
    case DeviceKind::device_cpu: return "cpu";
    case DeviceKind::device_cuda: return "cuda";
  }
  return "?";
}

int pick_gpu(int device_index, int local_rank, int n_gpus) {
  if (device_index >= 0) return device_index;
  return n_gpus > 0 ? local_rank % n_gpus : 0;
}

int pick_gpu(const BackendOptions& options, int local_rank) {
  int n_gpus = 0;
#ifdef DSINFER_HAVE_CUDA
  if (options.device_index < 0) n_gpus = cuda_device_count();
#endif
  return pick_gpu(options.device_index, local_rank, n_gpus);
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  BackendOptions o = options;
  o.device_index = std::max(options.device_index, 0);
  o.device = resolve_device(options.device);
  o.dtype = resolve_dtype(options.dtype, "--dtype", o.device);
  o.kv_cache_dtype = resolve_dtype(options.kv_cache_dtype, "--kv-cache-dtype", o.device);
  std::unique_ptr<Backend> backend;
  if (o.device == DeviceKind::device_cpu) {
    if (o.dtype != "float32")
      fail("--dtype {} is not supported by the CPU backend (it computes in float32; use --dtype float32 or auto)",
           o.dtype);
    if (o.kv_cache_dtype != "float32")
      fail("--kv-cache-dtype {} is not supported by the CPU backend (use float32 or auto)", o.kv_cache_dtype);
    backend = make_cpu_backend();
  } else {
#ifdef DSINFER_HAVE_CUDA
    backend = make_cuda_backend(o);
#endif
  }
  spdlog::info("backend: {} (--device {}), activations {}, KV cache {}", backend->name(), device_name(options.device),
               dtype_name(backend->activation_dtype()), dtype_name(backend->kv_dtype()));
  return backend;
}

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

}  // namespace dsi
