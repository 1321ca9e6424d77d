#include "backend/cuda/op_timer.h"

#include <chrono>
#include <map>
#include <thread>

#include "backend/cuda/check.h"

namespace dsi::cuda {

namespace {

// Long enough for the host to queue a whole decode step (~1,000 launches) behind it.
constexpr auto kHoldBack = std::chrono::milliseconds(100);

void CUDART_CB hold_back(void*) { std::this_thread::sleep_for(kHoldBack); }

}  // namespace

OpTimer::Scope::Scope(OpTimer* timer, const char* op, cudaStream_t stream) : timer_(timer), stream_(stream) {
  if (!timer_) return;
  const size_t start = timer_->n_events_;
  timer_->event(start).record(stream_);
  timer_->records_.push_back({op, start});
  timer_->n_events_ += 2;
  end_event_ = start + 1;
}

OpTimer::Scope::~Scope() {
  if (timer_) timer_->event(end_event_).record(stream_);
}

Event& OpTimer::event(size_t i) {
  while (events_.size() <= i) events_.push_back(std::make_unique<Event>(true));
  return *events_[i];
}

void OpTimer::begin(cudaStream_t stream) {
  records_.clear();
  n_events_ = 0;
  running_ = true;
  DSI_CUDA_CHECK(cudaLaunchHostFunc(stream, hold_back, nullptr));
}

std::vector<OpTiming> OpTimer::end(cudaStream_t stream) {
  running_ = false;
  DSI_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::map<std::string, OpTiming> by_op;
  for (const Record& r : records_) {
    OpTiming& t = by_op[r.op];
    t.op = r.op;
    ++t.calls;
    t.seconds += double(events_[r.start + 1]->elapsed_ms_since(*events_[r.start])) / 1000.0;
  }
  std::vector<OpTiming> out;
  for (auto& [op, t] : by_op) out.push_back(t);
  return out;
}

}  // namespace dsi::cuda
