#pragma once
// Decode steps as CUDA graphs: one graph per step key (CudaBackend::run_recorded). A decode
// step is ~400-800 small kernels; replaying them as one graph removes the host's launch cost
// and the gaps between launches. The first call with a key runs eagerly (kernels load and
// cuBLASLt plans are made on first use, neither legal inside a capture), the second captures
// and replays, later calls replay. A step that cannot be captured (an op synchronises or
// copies from the host) is run eagerly and its key stays eager. At most kMaxGraphs are kept
// (sizes x context buckets could make ~1,000); keys past that run eagerly.
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <unordered_map>

namespace dsi::cuda {

class StepGraphs {
 public:
  StepGraphs() = default;
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  static constexpr int64_t kMaxGraphs = 256;
  void run(uint64_t key, cudaStream_t stream, const std::function<void()>& ops);
  int64_t n_graphs() const { return n_graphs_; }

 private:
  struct Entry {
    int calls = 0;
    bool eager_only = false;
    cudaGraphExec_t exec = nullptr;
  };
  std::unordered_map<uint64_t, Entry> entries_;
  int64_t n_graphs_ = 0;
  bool cap_logged_ = false;
};

}  // namespace dsi::cuda
