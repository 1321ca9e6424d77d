#include "backend/cuda/check.h"

#include <cstdio>
#include <cstdlib>

#include "backend/cuda/args.h"
#include "core/error.h"

namespace dsi::cuda {

void fail_cuda_call(const char* expr, const std::string& error, const char* file, int line) {
  fail("CUDA: {} failed with {} at {}:{}", expr, error, file, line);
}

void fail_argument(const std::string& message) { throw Error(message); }

namespace {
// DSINFER_CUDA_TRACE=1: every launch is logged to stderr before the stream is synchronised
// after it, so a fault or a hang shows which kernel it was (the last name printed).
bool trace_launches() {
  static const bool on = [] {
    const char* v = std::getenv("DSINFER_CUDA_TRACE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}
}  // namespace

void check_launch(cudaStream_t stream, const char* kernel, const char* file, int line) {
  check_cuda(cudaGetLastError(), kernel, file, line);
  if (trace_launches()) {
    std::fprintf(stderr, "cuda launch: %s (%s:%d)\n", kernel, file, line);
    check_cuda(cudaStreamSynchronize(stream), kernel, file, line);
    return;
  }
#ifdef DSINFER_CUDA_SYNC_CHECK
  check_cuda(cudaStreamSynchronize(stream), kernel, file, line);
#else
  (void)stream;
#endif
}

namespace detail {

std::string shape_str(const Tensor& t) { return fmt::format("[{}, {}] {}", t.rows, t.cols, dtype_name(t.dtype)); }

void require_dtype(const Tensor& t, bool ok, const char* op, const char* name, const char* allowed) {
  if (!ok) fail("{}: {} is {}, expected {}", op, name, shape_str(t), allowed);
}

void require_float(const Tensor& t, const char* op, const char* name) {
  require_dtype(t, t.dtype == DType::f32 || t.dtype == DType::bf16, op, name, "f32 or bf16");
}

void require_shape(const Tensor& t, int64_t rows, int64_t cols, const char* op, const char* name) {
  if (t.rows != rows || t.cols != cols) fail("{}: {} is {}, expected [{}, {}]", op, name, shape_str(t), rows, cols);
  if (t.rows > 1 && t.row_stride < t.cols)
    fail("{}: {} has row stride {} < {} columns", op, name, t.row_stride, t.cols);
  if (t.numel() > 0 && t.data == nullptr) fail("{}: {} has no data", op, name);
}

}  // namespace detail

}  // namespace dsi::cuda
