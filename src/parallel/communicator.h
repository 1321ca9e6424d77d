#pragma once
// A group of ranks and the collectives the model and the engine use between them
// (docs/design/parallel.md). Two implementations: SelfCommunicator (a group of one, no MPI:
// every collective is a copy) and MpiCommunicator (host memory, MPI non-blocking collectives
// polled against a deadline, so a rank that died or hangs turns into CollectiveTimeout
// naming the collective instead of a silent stall). An NCCL one (GPU memory) sits beside them
// in builds with CUDA.
//
// Every rank of the group must call the same collectives in the same order with the same
// sizes. Buffers are host memory owned by the caller and only used during the call. One
// thread at a time calls a communicator. Reductions sum in rank order, so the result is the
// same on every rank and from run to run.
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/error.h"

namespace dsi {

// A collective that did not complete within its timeout: a peer died, hangs, or runs a
// different collective (NCCL also raises it for a peer's failure it reports before the
// deadline). The communicator is unusable afterwards (every later call throws).
// `collective`, `group`, `rank` and `size` say where (for /health and the logs); `rank` is the
// rank that waited, in the group's numbering.
class CollectiveTimeout : public Error {
 public:
  using Error::Error;
  CollectiveTimeout(const std::string& what, std::string op, std::string group_name, int group_rank, int group_size,
                    double seconds)
      : Error(what), collective(std::move(op)), group(std::move(group_name)), rank(group_rank), size(group_size),
        timeout_s(seconds) {}
  std::string collective, group;
  int rank = -1, size = 0;
  double timeout_s = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "world", "tp", "ep": named in errors and logs.
  virtual const std::string& name() const = 0;

  // How long one collective may wait for its peers before CollectiveTimeout. Virtual so that
  // a wrapper (TimedCommunicator) passes it to the communicator it wraps.
  virtual void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  virtual std::chrono::milliseconds timeout() const { return timeout_; }

  // In place: data = sum over ranks of data (float32).
  virtual void all_reduce_sum(std::span<float> data) = 0;
  // In place on bfloat16 bits: widened to float32, summed in float32, rounded back once.
  void all_reduce_sum_bf16(std::span<uint16_t> data);
  // recv = the ranks' send buffers one after the other (recv.size() = size() * send.size()).
  virtual void all_gather(std::span<const float> send, std::span<float> recv) = 0;
  // recv = this rank's block of the sum over ranks of send (send.size() = size() * recv.size()).
  virtual void reduce_scatter(std::span<const float> send, std::span<float> recv) = 0;
  // Bytes: rank r sends send_counts[p] bytes (from send, peers in order) to each peer p and
  // receives recv_counts[p] bytes from each (into recv, peers in order). Counts have size()
  // entries; every pair's counts must agree.
  virtual void all_to_all(std::span<const std::byte> send, std::span<const int64_t> send_counts,
                          std::span<std::byte> recv, std::span<const int64_t> recv_counts) = 0;
  // Bytes from `root` to everyone, in place.
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  virtual void barrier() = 0;

  // A sub-group of the ranks that pass the same color, ordered by key (MPI_Comm_split).
  // Collective over this group.
  virtual std::unique_ptr<Communicator> split(int color, int key, const std::string& name) = 0;

 protected:
  std::chrono::milliseconds timeout_{std::chrono::seconds(20)};
};

// Another timeout for the collectives of one scope (a worker's wait for rank 0's next step, which
// may be hours; the exchange after loading, which waits for the slowest rank's weights), then
// the communicator's own again.
class ScopedTimeout {
 public:
  ScopedTimeout(Communicator& c, std::chrono::milliseconds t) : c_(c), saved_(c.timeout()) { c_.set_timeout(t); }
  ~ScopedTimeout() { c_.set_timeout(saved_); }
  ScopedTimeout(const ScopedTimeout&) = delete;
  ScopedTimeout& operator=(const ScopedTimeout&) = delete;

 private:
  Communicator& c_;
  std::chrono::milliseconds saved_;
};

// A group of one: no MPI needed.
class SelfCommunicator final : public Communicator {
 public:
  explicit SelfCommunicator(std::string name = "world") : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  void all_reduce_sum(std::span<float>) override {}
  void all_gather(std::span<const float> send, std::span<float> recv) override;
  void reduce_scatter(std::span<const float> send, std::span<float> recv) override;
  void all_to_all(std::span<const std::byte> send, std::span<const int64_t> send_counts, std::span<std::byte> recv,
                  std::span<const int64_t> recv_counts) override;
  void broadcast(std::span<std::byte>, int root) override;
  void barrier() override {}
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;

 private:
  std::string name_;
};

}  // namespace dsi
