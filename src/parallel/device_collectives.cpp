#include "parallel/device_collectives.h"

#include <numeric>

#include "core/error.h"

namespace dsi {

size_t check_row_all_to_all(Communicator& group, const Tensor& send, std::span<const int64_t> send_rows,
                            const Tensor& recv, std::span<const int64_t> recv_rows) {
  const size_t n = size_t(group.size());
  if (send_rows.size() != n || recv_rows.size() != n)
    fail("all_to_all on group '{}': {} send and {} recv row counts for {} ranks", group.name(), send_rows.size(),
         recv_rows.size(), n);
  if (send.cols != recv.cols || send.dtype != recv.dtype)
    fail("all_to_all on group '{}': send rows are {} x {}, recv rows {} x {}", group.name(), send.cols,
         dtype_name(send.dtype), recv.cols, dtype_name(recv.dtype));
  const int64_t n_send = std::accumulate(send_rows.begin(), send_rows.end(), int64_t(0));
  const int64_t n_recv = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t(0));
  if (n_send > send.rows || n_recv > recv.rows)
    fail("all_to_all on group '{}': counts total {} rows to send and {} to receive, the tensors hold {} and {}",
         group.name(), n_send, n_recv, send.rows, recv.rows);
  if (!send.contiguous() || !recv.contiguous()) fail("all_to_all on group '{}': the rows are not packed", group.name());
  return size_t(send.cols) * dtype_size(send.dtype);
}

HostStagedCollectives::HostStagedCollectives(std::shared_ptr<Communicator> host, Backend& backend)
    : host_(std::move(host)), be_(backend) {
  if (!host_) fail("HostStagedCollectives: needs a host communicator");
  send_bytes_.assign(size_t(host_->size()), 0);
  recv_bytes_.assign(size_t(host_->size()), 0);
}

void HostStagedCollectives::all_reduce_sum(Tensor t) {
  if (host_->size() == 1) return;
  if (!t.contiguous()) fail("all_reduce on group '{}': the tensor is not packed", host_->name());
  const size_t n = size_t(t.numel()), bytes = n * dtype_size(t.dtype);
  send_.resize(bytes);
  be_.copy_to_host(t, send_.data());
  if (t.dtype == DType::f32) host_->all_reduce_sum({reinterpret_cast<float*>(send_.data()), n});
  else if (t.dtype == DType::bf16) host_->all_reduce_sum_bf16({reinterpret_cast<uint16_t*>(send_.data()), n});
  else fail("all_reduce: activations of dtype {} are not supported", dtype_name(t.dtype));
  // send_ stays unchanged until the next copy_to_host, which waits for this copy.
  be_.copy_from_host(send_.data(), t);
}

void HostStagedCollectives::all_to_all(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                                       std::span<const int64_t> recv_rows) {
  const size_t row_bytes = check_row_all_to_all(*host_, send, send_rows, recv, recv_rows);
  int64_t n_send = 0, n_recv = 0;
  for (size_t p = 0; p < send_rows.size(); ++p) {
    send_bytes_[p] = send_rows[p] * int64_t(row_bytes);
    recv_bytes_[p] = recv_rows[p] * int64_t(row_bytes);
    n_send += send_rows[p];
    n_recv += recv_rows[p];
  }
  send_.resize(size_t(n_send) * row_bytes);
  if (n_send > 0) be_.copy_to_host(send.slice_rows(0, n_send), send_.data());
  recv_.resize(size_t(n_recv) * row_bytes);
  host_->all_to_all(send_, send_bytes_, recv_, recv_bytes_);
  if (n_recv > 0) {
    be_.copy_from_host(recv_.data(), recv.slice_rows(0, n_recv));
    // The next call may receive into recv_ without a copy_to_host first (a rank with nothing to
    // send), so this copy must be done before returning.
    be_.synchronize();
  }
}

}  // namespace dsi
