#include "backend/cuda/check.h"

#include "core/error.h"

namespace dsi::cuda {

void fail_cuda_call(const char* expr, const std::string& error, const char* file, int line) {
  fail("CUDA: {} failed with {} at {}:{}", expr, error, file, line);
}

void fail_argument(const std::string& message) { throw Error(message); }

void check_launch(cudaStream_t stream, const char* kernel, const char* file, int line) {
  check_cuda(cudaGetLastError(), kernel, file, line);
#ifdef DSINFER_CUDA_SYNC_CHECK
  check_cuda(cudaStreamSynchronize(stream), kernel, file, line);
#else
  (void)stream;
#endif
}

}  // namespace dsi::cuda
