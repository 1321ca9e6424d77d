#pragma once
// Owning wrappers for a CUDA stream and event; each backend holds its own (no global stream).
#include <cuda_runtime.h>

namespace dsi::cuda {

class Stream {
 public:
  Stream();  // a non-blocking stream (does not synchronise with the legacy default stream)
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void synchronize() const;  // waits for all work queued so far; throws on a kernel fault

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }
  void record(cudaStream_t s);
  void synchronize() const;
  // Milliseconds from `start` to this event; both recorded and complete.
  float elapsed_ms_since(const Event& start) const;

 private:
  cudaEvent_t e_ = nullptr;
};

}  // namespace dsi::cuda
