#include "parallel/timed_communicator.h"

namespace dsi {

TimedCommunicator::TimedCommunicator(std::unique_ptr<Communicator> inner, std::shared_ptr<CommunicationClock> clock)
    : inner_(std::move(inner)), clock_(std::move(clock)) {
  if (!inner_ || !clock_) fail("TimedCommunicator: needs a communicator and a clock");
}

template <class Fn>
void TimedCommunicator::timed(Fn&& fn) {
  clock_->time(fn);
}

void TimedCommunicator::all_reduce_sum(std::span<float> data) {
  timed([&] { inner_->all_reduce_sum(data); });
}
void TimedCommunicator::all_gather(std::span<const float> send, std::span<float> recv) {
  timed([&] { inner_->all_gather(send, recv); });
}
void TimedCommunicator::reduce_scatter(std::span<const float> send, std::span<float> recv) {
  timed([&] { inner_->reduce_scatter(send, recv); });
}
void TimedCommunicator::all_to_all(std::span<const std::byte> send, std::span<const int64_t> send_counts,
                                   std::span<std::byte> recv, std::span<const int64_t> recv_counts) {
  timed([&] { inner_->all_to_all(send, send_counts, recv, recv_counts); });
}
void TimedCommunicator::broadcast(std::span<std::byte> data, int root) {
  timed([&] { inner_->broadcast(data, root); });
}
void TimedCommunicator::barrier() {
  timed([&] { inner_->barrier(); });
}

std::unique_ptr<Communicator> TimedCommunicator::split(int color, int key, const std::string& name) {
  return std::make_unique<TimedCommunicator>(inner_->split(color, key, name), clock_);
}

}  // namespace dsi
