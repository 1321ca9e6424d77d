#pragma once
// Device time per op kind over a stretch of a backend's work (Backend::begin_op_timing /
// end_op_timing): an event pair around every op, read back at the end. At the start the
// stream is held back by a host callback for a while, so the host queues the ops ahead of the
// GPU and each pair times the op itself, not the host's launch gaps; the step's wall time
// minus the sum is then the cost of launching (docs/benchmarks.md's breakdown).
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/stream.h"

namespace dsi::cuda {

class OpTimer {
 public:
  // Times the enclosed op if the timer is running; else nothing (one branch).
  class Scope {
   public:
    Scope(OpTimer* timer, const char* op, cudaStream_t stream);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    OpTimer* timer_;
    cudaStream_t stream_;
    size_t end_event_ = 0;
  };

  void begin(cudaStream_t stream);
  std::vector<OpTiming> end(cudaStream_t stream);
  bool running() const { return running_; }
  Scope scope(const char* op, cudaStream_t stream) { return Scope(running_ ? this : nullptr, op, stream); }

 private:
  Event& event(size_t i);

  bool running_ = false;
  std::vector<std::unique_ptr<Event>> events_;
  size_t n_events_ = 0;
  struct Record {
    const char* op;
    size_t start;  // events_[start] and events_[start + 1]
  };
  std::vector<Record> records_;
};

}  // namespace dsi::cuda
