#include "parallel/nccl_collectives.h"

#include <chrono>

#include "core/error.h"

namespace dsi {

namespace {

Communicator& checked(const std::shared_ptr<Communicator>& host, Backend& backend) {
  if (!host) fail("NcclCollectives: needs a host communicator");
  // Before NcclCommunicator's init, which binds the group to the current device.
  if (!backend.native_stream()) fail("NCCL collectives need a GPU backend; {} has no CUDA stream", backend.name());
  return *host;
}

}  // namespace

NcclCollectives::NcclCollectives(std::shared_ptr<Communicator> host, Backend& backend,
                                 std::shared_ptr<CommunicationClock> clock)
    : host_(std::move(host)), be_(backend), clock_(std::move(clock)), nccl_(checked(host_, backend), host_->name()) {
  send_bytes_.assign(size_t(host_->size()), 0);
  recv_bytes_.assign(size_t(host_->size()), 0);
}

void* NcclCollectives::prepare() {
  nccl_.set_timeout(host_->timeout());
  return be_.native_stream();
}

template <class Fn>
void NcclCollectives::timed(Fn&& fn) {
  if (!clock_) return fn();
  clock_->time(fn);
}

// A group of one still calls NCCL (the factory never makes one; the one-rank test does, to run it).
void NcclCollectives::all_reduce_sum(Tensor t) {
  if (!t.contiguous()) fail("all_reduce on group '{}': the tensor is not packed", host_->name());
  void* stream = prepare();
  timed([&] { nccl_.all_reduce_sum(t.data, t.numel(), t.dtype, stream); });
}

void NcclCollectives::all_to_all(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                                 std::span<const int64_t> recv_rows) {
  const size_t row_bytes = check_row_all_to_all(*host_, send, send_rows, recv, recv_rows);
  for (size_t p = 0; p < send_rows.size(); ++p) {
    send_bytes_[p] = send_rows[p] * int64_t(row_bytes);
    recv_bytes_[p] = recv_rows[p] * int64_t(row_bytes);
  }
  void* stream = prepare();
  timed([&] { nccl_.all_to_all(send.data, send_bytes_, recv.data, recv_bytes_, stream); });
}

}  // namespace dsi
