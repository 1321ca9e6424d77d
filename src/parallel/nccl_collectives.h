#pragma once
// The model's device collectives over NCCL (device_collectives.h; CUDA builds with NCCL):
// the activations move GPU to GPU, enqueued on the backend's stream after the ops that made
// them, and each call waits for its completion against the host communicator's timeout
// (NcclCommunicator): a peer that died or hangs aborts the NCCL group and throws
// CollectiveTimeout, the same failure path as the MPI one. Needs a GPU of its own per rank.
// Includes no CUDA header: the stream travels as the backend's native_stream().
#include <memory>

#include "parallel/device_collectives.h"
#include "parallel/nccl_communicator.h"
#include "parallel/timed_communicator.h"

namespace dsi {

class NcclCollectives final : public DeviceCollectives {
 public:
  // Collective over `host` (NCCL's bootstrap, one NCCL rank per host rank, same names). Makes
  // `backend`'s GPU current first (NCCL binds a group to the current device). The time of each
  // call goes to `clock` (may be null), as the host communicator's does. `backend` must outlive
  // it; one NCCL group per object, destroyed with it.
  NcclCollectives(std::shared_ptr<Communicator> host, Backend& backend, std::shared_ptr<CommunicationClock> clock);
  Communicator& host() override { return *host_; }
  const char* transport() const override { return "nccl"; }
  void all_reduce_sum(Tensor t) override;
  void all_to_all(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                  std::span<const int64_t> recv_rows) override;

 private:
  // The backend's stream, with the host communicator's timeout set on the NCCL group.
  void* prepare();
  template <class Fn>
  void timed(Fn&& fn);

  std::shared_ptr<Communicator> host_;
  Backend& be_;
  std::shared_ptr<CommunicationClock> clock_;
  NcclCommunicator nccl_;
  std::vector<int64_t> send_bytes_, recv_bytes_;
};

}  // namespace dsi
