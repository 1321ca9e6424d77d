#pragma once
// A few threads for the CPU-heavy part of a request (parsing its JSON, rendering the chat
// template, tokenizing), so that the I/O threads only move bytes: a 15 MB prompt then delays
// its own answer, not every stream's next token. The queue is bounded; a full one refuses.
//
// Threads: try_post from any thread; jobs run on the pool's threads, in order of arrival.
// The destructor runs what is still queued, then joins.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dsi::server {

class WorkPool {
 public:
  WorkPool(int n_threads, size_t max_queued);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues the job; false (and the job is dropped) when max_queued jobs are already waiting.
  bool try_post(std::function<void()> job);
  size_t max_queued() const { return max_queued_; }

 private:
  void work();

  size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace dsi::server
