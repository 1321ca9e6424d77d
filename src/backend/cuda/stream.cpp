#include "backend/cuda/stream.h"

#include "backend/cuda/check.h"

namespace dsi::cuda {

Stream::Stream() { DSI_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) (void)cudaStreamDestroy(s_);
}
void Stream::synchronize() const { DSI_CUDA_CHECK(cudaStreamSynchronize(s_)); }

Event::Event(bool timing) {
  DSI_CUDA_CHECK(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming));
}
Event::~Event() {
  if (e_) (void)cudaEventDestroy(e_);
}
void Event::record(cudaStream_t s) { DSI_CUDA_CHECK(cudaEventRecord(e_, s)); }
void Event::synchronize() const { DSI_CUDA_CHECK(cudaEventSynchronize(e_)); }
float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  DSI_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
  return ms;
}

}  // namespace dsi::cuda
