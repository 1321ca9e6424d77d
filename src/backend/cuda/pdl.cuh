#pragma once
// Programmatic dependent launch (Hopper): every kernel of ours is launched through `launch`,
// which lets the GPU start it while the kernel before it on the stream is still running, and
// every kernel begins with `pdl_begin`, which waits there until that kernel has finished and its
// writes are visible. What overlaps is the launch itself: block scheduling, the kernel's
// argument fetch and whatever a kernel does before its `pdl_begin` (nothing reads or writes
// activations there). A decode step at batch 1 is ~430 short kernels, each of which otherwise
// starts only once the one before has drained. Stream capture keeps these edges in the graph.
//
// The order of work is unchanged, so results are bit-for-bit those of plain launches. Kernels
// of libraries (cuBLASLt, CUTLASS) keep plain launches and are waited for in full by the
// kernel after them. Off until it has run on a GPU (written in a session without one:
// docs/design/cuda_notes.md, session 9): DSINFER_CUDA_PDL=1 turns it on.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace dsi::cuda::detail {

// The first statement of every kernel launched by `launch`: waits for the grid before it to
// complete (a no-op when it was launched plainly), then lets the next kernel's blocks be
// scheduled as this grid's blocks retire.
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Fetches the line holding p into L2 (no register, no effect on results): what a kernel may do
// before its `pdl_begin` with data the kernels before it do not write (weights).
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

inline bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("DSINFER_CUDA_PDL");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

// kernel<<<grid, block, smem, stream>>>(args...), allowed to overlap the previous kernel's tail.
template <class... Params, class... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &attr;
  config.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace dsi::cuda::detail
