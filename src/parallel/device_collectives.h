#pragma once
// The model's collectives on activations in backend memory (docs/design/parallel.md,
// "Collectives in the forward pass"): the TP and MoE all-reduces and the row all-to-alls of
// the DP expert exchange. Two implementations over the ranks of a host Communicator:
// - HostStagedCollectives (here): a copy to host memory, the host (MPI) communicator, a copy
//   back. Every backend; the only path on the CPU and for CUDA ranks that share a GPU.
// - NcclCollectives (parallel/nccl_collectives.h, CUDA builds with NCCL): NCCL on the device
//   memory itself, enqueued on the backend's stream.
// parallel/device_collectives_factory.h makes the one chosen at startup (collective_choice.h).
//
// Contract as Communicator's: every rank of the group makes the same calls in the same order
// with agreeing sizes; one thread at a time (the one that runs the backend). Tensors are packed
// rows in the backend's memory, used only during the call; a call returns with its result in
// place for the backend's next op. A peer that died or hangs is a CollectiveTimeout (the host
// communicator's or NCCL's) within the host communicator's timeout, and the group is unusable
// afterwards.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "parallel/communicator.h"

namespace dsi {

class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  // The host communicator of the same ranks: the control messages beside the activations (the
  // exchange's row counts), and the timeout: NCCL takes it from there before each call, so a
  // ScopedTimeout on it covers both.
  virtual Communicator& host() = 0;
  virtual const char* transport() const = 0;  // "host" or "nccl", for the logs
  int rank() { return host().rank(); }
  int size() { return host().size(); }

  // In place: t = the sum over the ranks of t (f32 or bf16). Bit-identical on every rank. bf16:
  // the host path widens to f32, sums in rank order and rounds once; NCCL sums natively, with
  // f32 arithmetic inside each step and a bf16 rounding between steps (as vLLM and SGLang do):
  // the same values for two ranks, within a few bf16 ulps of the host's for more.
  virtual void all_reduce_sum(Tensor t) = 0;
  // Rows: this rank sends send_rows[p] rows of `send` (peers in order, from row 0) to each peer
  // p and receives recv_rows[p] rows from each into `recv` (peers in order, from row 0). send and
  // recv have the same columns and dtype and at least the rows counted; counts have size()
  // entries and every pair's counts agree.
  virtual void all_to_all(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                          std::span<const int64_t> recv_rows) = 0;
};

// Staged through host memory. Owns its staging buffers (reused from call to call); `backend`
// must outlive it.
class HostStagedCollectives final : public DeviceCollectives {
 public:
  HostStagedCollectives(std::shared_ptr<Communicator> host, Backend& backend);
  Communicator& host() override { return *host_; }
  const char* transport() const override { return "host"; }
  void all_reduce_sum(Tensor t) override;
  void all_to_all(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                  std::span<const int64_t> recv_rows) override;

 private:
  std::shared_ptr<Communicator> host_;
  Backend& be_;
  std::vector<std::byte> send_, recv_;
  std::vector<int64_t> send_bytes_, recv_bytes_;
};

// The checks both implementations make on the arguments of all_to_all over `group` (errors
// name it); returns the bytes of one row.
size_t check_row_all_to_all(Communicator& group, const Tensor& send, std::span<const int64_t> send_rows,
                            const Tensor& recv, std::span<const int64_t> recv_rows);

}  // namespace dsi
