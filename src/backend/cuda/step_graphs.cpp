#include "backend/cuda/step_graphs.h"

#include <string>

#include "backend/cuda/check.h"
#include "core/log.h"

namespace dsi::cuda {

StepGraphs::~StepGraphs() {
  for (auto& [key, e] : entries_)
    if (e.exec) (void)cudaGraphExecDestroy(e.exec);
}

void StepGraphs::run(uint64_t key, cudaStream_t stream, const std::function<void()>& ops) {
  Entry& e = entries_[key];
  if (e.exec) {
    DSI_CUDA_CHECK(cudaGraphLaunch(e.exec, stream));
    return;
  }
  if (e.eager_only || e.calls++ == 0) {
    ops();
    return;
  }
  if (n_graphs_ >= kMaxGraphs) {
    if (!cap_logged_) spdlog::info("CUDA graphs: {} kept; steps of new sizes run without one", kMaxGraphs);
    cap_logged_ = true;
    e.eager_only = true;
    ops();
    return;
  }
  // Thread-local mode: only this thread's calls are checked against the capture, so another
  // backend's thread (a test, the tokenizer) is not affected.
  DSI_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  std::string why;
  try {
    ops();
  } catch (const std::exception& ex) {
    why = ex.what();
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (why.empty() && ended != cudaSuccess) why = cudaGetErrorString(ended);
  if (why.empty()) {
    const cudaError_t made = cudaGraphInstantiate(&e.exec, graph, 0);
    if (made != cudaSuccess) {
      why = cudaGetErrorString(made);
      e.exec = nullptr;
    }
  }
  if (graph) (void)cudaGraphDestroy(graph);
  if (!why.empty()) {
    // Nothing of a failed capture ran: the step runs eagerly now, and so does its key later.
    (void)cudaGetLastError();
    e.eager_only = true;
    spdlog::warn("CUDA graphs: step key {:#x} cannot be captured ({}); it runs without a graph", key, why);
    ops();
    return;
  }
  ++n_graphs_;
  DSI_CUDA_CHECK(cudaGraphLaunch(e.exec, stream));
}

}  // namespace dsi::cuda
