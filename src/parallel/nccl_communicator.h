#pragma once
// Collectives over NCCL on GPU memory (builds with DSINFER_CUDA, when NCCL is found). The
// host Communicator bootstraps it: rank 0 makes the ncclUniqueId and broadcasts it over
// MPI. Same contract as Communicator (every rank the same calls in the same order; one thread
// at a time) except that buffers are device memory of the rank's current CUDA device and each
// call is enqueued on `stream` and then waited for against the timeout: a peer that died or
// hangs makes the call abort the NCCL communicator (ncclCommAbort) and throw
// CollectiveTimeout, never hang. NCCL sums in its own order (ring or tree by size), which is
// deterministic for a fixed group, size and algorithm, not rank order as the MPI host one.
// One GPU per rank: NCCL refuses two ranks of a group on one device ("Duplicate GPU detected").
#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "core/dtype.h"
#include "parallel/communicator.h"

namespace dsi {

class NcclCommunicator {
 public:
  // Collective over `host` (same ranks, same order): one NCCL rank per host rank.
  NcclCommunicator(Communicator& host, std::string name);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& name() const { return name_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

  // `stream` is a cudaStream_t (0: the legacy default stream). dtype: f32 or bf16 (NCCL sums
  // bf16 with float accumulation inside each reduction step, rounding to bf16 between steps).
  void all_reduce_sum(void* data, int64_t count, DType dtype, void* stream);
  // recv = the ranks' `count` values of send, one after the other.
  void all_gather(const void* send, void* recv, int64_t count, DType dtype, void* stream);
  // recv = this rank's `count` values of the sum of every rank's size() x count values.
  void reduce_scatter(const void* send, void* recv, int64_t count, DType dtype, void* stream);
  // Bytes, peers in order (as Communicator::all_to_all), as grouped ncclSend/ncclRecv.
  void all_to_all(const void* send, std::span<const int64_t> send_counts, void* recv,
                  std::span<const int64_t> recv_counts, void* stream);
  void broadcast(void* data, int64_t bytes, int root, void* stream);

 private:
  void wait(const char* op, void* stream);
  void check_usable(const char* op) const;

  void* comm_ = nullptr;  // ncclComm_t
  std::string name_;
  int rank_ = 0, size_ = 1;
  bool broken_ = false;
  std::chrono::milliseconds timeout_{std::chrono::seconds(20)};
};

}  // namespace dsi
