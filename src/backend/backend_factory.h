#pragma once
// The one place a backend is made (the engine's ModelRunner calls it): --device and --dtype
// resolved to a concrete backend, the choice logged once.
#include <memory>
#include <string>

#include "backend/backend.h"

namespace dsi {

enum class DeviceKind { device_auto, device_cpu, device_cuda };

struct BackendOptions {
  DeviceKind device = DeviceKind::device_auto;  // auto: cuda when the build has it and a GPU is present, else cpu
  // Which GPU: -1 picks (pick_gpu; make_backend takes GPU 0).
  int device_index = -1;
  // Activation dtype; "auto" is bf16 on a GPU and f32 on the CPU. float32 on a GPU is the strict
  // mode (TF32 off). The CPU supports float32 only.
  std::string dtype = "auto";                   // auto | float32 | bfloat16
  std::string kv_cache_dtype = "auto";          // auto (= bf16 on a GPU, f32 on the CPU) | float32 | bfloat16
  // --enforce-eager (vLLM's name): no CUDA graphs; every decode step is launched op by op.
  bool enforce_eager = false;
};

// "cpu", "cuda", "auto" -> DeviceKind; anything else is an Error naming --device.
DeviceKind parse_device(const std::string& text);
const char* device_name(DeviceKind d);

// auto -> cuda when this build has CUDA and a GPU is visible, else cpu; an Error for cuda
// without CUDA or without a GPU. make_backend resolves the same way.
DeviceKind resolve_device(DeviceKind wanted);
// Whether make_backend(o) would run on a GPU; false where it would refuse the options (it
// says why then).
bool runs_on_gpu(const BackendOptions& o) noexcept;

// The GPU a rank runs on: options.device_index where set (>= 0), else local_rank (the rank's
// place among its node's ranks) modulo the GPUs this process sees, as vLLM and SGLang assign
// them, so `mpirun -np 8` on an 8-GPU node puts one rank on each; 0 without a GPU.
int pick_gpu(const BackendOptions& options, int local_rank);
// The same rule for n_gpus visible GPUs.
int pick_gpu(int device_index, int local_rank, int n_gpus);

// Resolves auto, checks the build and the dtypes (clear Errors: "--device cuda: this build has
// no CUDA", "--dtype bfloat16 is not supported by the CPU backend"), logs the choice.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

// The CPU backend with f32 activations and KV cache (tests and tools that need no choice).
std::unique_ptr<Backend> make_cpu_backend();

}  // namespace dsi
