#pragma once
// Collectives over MPI in host memory (CPU ranks, and ranks that cannot use NCCL). Every
// collective is a non-blocking MPI call polled against the communicator's timeout, so a peer
// that died or hangs becomes CollectiveTimeout, never a silent stall. Reductions gather every
// rank's values and sum them locally in rank order: the result is bit-identical on every rank
// and from run to run (MPI_SUM leaves the order to the library), at the price of size() times
// the bytes of a ring all-reduce, which is immaterial for CPU ranks.
#include <memory>
#include <vector>

#include "parallel/communicator.h"

namespace dsi {

// MPI_Init_thread on construction, MPI_Finalize on destruction: one per process, created
// before any MpiCommunicator and destroyed after the last one. A process that exits on an
// error with collectives still in flight should skip MPI_Finalize (abandon()), which could
// wait for its peers forever.
class MpiSession {
 public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  void abandon() { finalize_ = false; }
  // Ends every rank of the job (MPI_Abort): a rank that fails mid-run must not leave its
  // peers waiting in a collective.
  [[noreturn]] void abort_all(int code);

 private:
  bool finalize_ = true;
};

class MpiCommunicator final : public Communicator {
 public:
  // The whole of MPI_COMM_WORLD (a duplicate, so our traffic never meets anyone else's).
  static std::unique_ptr<MpiCommunicator> world();
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  void all_reduce_sum(std::span<float> data) override;
  void all_gather(std::span<const float> send, std::span<float> recv) override;
  void reduce_scatter(std::span<const float> send, std::span<float> recv) override;
  void all_to_all(std::span<const std::byte> send, std::span<const int64_t> send_counts, std::span<std::byte> recv,
                  std::span<const int64_t> recv_counts) override;
  void broadcast(std::span<std::byte> data, int root) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;

 private:
  struct Pending;  // a request that timed out and the buffers it may still write
  MpiCommunicator(void* comm, std::string name);
  void check_usable(const char* op) const;
  // Waits for `request` until the deadline; on timeout keeps `buffers` alive with it and throws.
  void wait(const char* op, void* request, std::vector<std::vector<std::byte>>&& buffers);

  void* comm_;  // MPI_Comm, kept opaque so that only this file's .cpp includes mpi.h
  std::string name_;
  int rank_ = 0, size_ = 1;
  bool broken_ = false;
  std::vector<std::unique_ptr<Pending>> abandoned_;
};

}  // namespace dsi
