#pragma once
// Error checking for every CUDA runtime and cuBLASLt call, and for kernel launches. Failures
// throw dsi::Error naming the call, its error and the source line. This header is included
// by .cu files too, so it stays free of fmt (nvcc cannot compile fmt's consteval checks).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

namespace dsi::cuda {

[[noreturn]] void fail_cuda_call(const char* expr, const std::string& error, const char* file, int line);
// A bad argument to a host wrapper (shape, dtype, stride): dsi::Error with this message.
[[noreturn]] void fail_argument(const std::string& message);

inline void check_cuda(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess)
    fail_cuda_call(expr, std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")", file, line);
}
inline void check_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) fail_cuda_call(expr, cublasLtGetStatusName(s), file, line);
}

// After every kernel launch: the launch's own error (bad configuration, no kernel image for
// this GPU) always; in builds with DSINFER_CUDA_SYNC_CHECK (Debug) also the kernel's
// execution errors, by synchronising the stream, so a fault is reported at its launch.
void check_launch(cudaStream_t stream, const char* kernel, const char* file, int line);

}  // namespace dsi::cuda

#define DSI_CUDA_CHECK(expr) ::dsi::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)
#define DSI_CUBLAS_CHECK(expr) ::dsi::cuda::check_cublas((expr), #expr, __FILE__, __LINE__)
#define DSI_CUDA_CHECK_LAUNCH(stream, kernel) ::dsi::cuda::check_launch((stream), (kernel), __FILE__, __LINE__)
