#pragma once
// Time spent in collectives, for the step's `communication` phase (/metrics
// dsinfer_engine_step_seconds_total{phase="communication"}, docs/metrics.md). A
// TimedCommunicator wraps another communicator and adds the wall time of every call to a
// CommunicationClock that several communicators (world, tp, their splits) share; the engine
// reads the clock before and after a forward step and moves the difference out of `forward`.
// The time is what this rank waited: the transfer and any wait for slower peers.
#include <atomic>
#include <chrono>
#include <memory>

#include "parallel/communicator.h"

namespace dsi {

class CommunicationClock {
 public:
  void add(std::chrono::steady_clock::duration d) {
    nanoseconds_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(), std::memory_order_relaxed);
  }
  double seconds() const { return double(nanoseconds_.load(std::memory_order_relaxed)) * 1e-9; }
  int64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  void count_call() { calls_.fetch_add(1, std::memory_order_relaxed); }
  // Runs fn and counts it as one call and its time; a call that throws (a timeout) counts too:
  // that wait was communication as well.
  template <class Fn>
  void time(Fn&& fn) {
    struct Stop {
      CommunicationClock& clock;
      std::chrono::steady_clock::time_point start;
      ~Stop() {
        clock.add(std::chrono::steady_clock::now() - start);
        clock.count_call();
      }
    } stop{*this, std::chrono::steady_clock::now()};
    fn();
  }

 private:
  std::atomic<int64_t> nanoseconds_{0};
  std::atomic<int64_t> calls_{0};
};

class TimedCommunicator final : public Communicator {
 public:
  TimedCommunicator(std::unique_ptr<Communicator> inner, std::shared_ptr<CommunicationClock> clock);

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const std::string& name() const override { return inner_->name(); }
  void set_timeout(std::chrono::milliseconds t) override { inner_->set_timeout(t); }
  std::chrono::milliseconds timeout() const override { return inner_->timeout(); }

  void all_reduce_sum(std::span<float> data) override;
  void all_gather(std::span<const float> send, std::span<float> recv) override;
  void reduce_scatter(std::span<const float> send, std::span<float> recv) override;
  void all_to_all(std::span<const std::byte> send, std::span<const int64_t> send_counts, std::span<std::byte> recv,
                  std::span<const int64_t> recv_counts) override;
  void broadcast(std::span<std::byte> data, int root) override;
  void barrier() override;
  // The sub-group is timed on the same clock.
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;

  const std::shared_ptr<CommunicationClock>& clock() const { return clock_; }

 private:
  template <class Fn>
  void timed(Fn&& fn);

  std::unique_ptr<Communicator> inner_;
  std::shared_ptr<CommunicationClock> clock_;
};

}  // namespace dsi
