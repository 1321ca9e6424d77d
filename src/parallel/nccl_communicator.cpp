#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <thread>

namespace dsi {

namespace {

ncclComm_t as_comm(void* p) { return static_cast<ncclComm_t>(p); }
cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

void check_nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess && rc != ncclInProgress) fail("NCCL {} failed: {}", what, ncclGetErrorString(rc));
}

ncclDataType_t nccl_type(DType t, const char* op) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    default: fail("NCCL {}: dtype {} is not supported (f32, bf16)", op, dtype_name(t));
  }
}

}  // namespace

NcclCommunicator::NcclCommunicator(Communicator& host, std::string name)
    : name_(std::move(name)), rank_(host.rank()), size_(host.size()), timeout_(host.timeout()) {
  ncclUniqueId id{};
  if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  host.broadcast({reinterpret_cast<std::byte*>(&id), sizeof id}, 0);
  // Non-blocking init, so that a peer that never joins is a timeout here too.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRankConfig(&comm, size_, id, rank_, &config), "ncclCommInitRankConfig");
  comm_ = comm;
  wait("init", nullptr);
}

NcclCommunicator::~NcclCommunicator() {
  if (!comm_) return;
  if (broken_) ncclCommAbort(as_comm(comm_));
  else ncclCommDestroy(as_comm(comm_));
}

void NcclCommunicator::check_usable(const char* op) const {
  if (broken_) fail("{} on NCCL group '{}': the group is unusable after an earlier collective timed out", op, name_);
}

// Polls the communicator's async state (init, enqueue) and then the stream.
void NcclCommunicator::wait(const char* op, void* stream) {
  const auto start = std::chrono::steady_clock::now(), deadline = start + timeout_;
  for (;;) {
    ncclResult_t async = ncclSuccess;
    check_nccl(ncclCommGetAsyncError(as_comm(comm_), &async), "ncclCommGetAsyncError");
    if (async != ncclSuccess && async != ncclInProgress) {
      broken_ = true;
      if (async != ncclRemoteError && async != ncclSystemError)
        fail("NCCL {} on group '{}' (rank {} of {}) failed: {}", op, name_, rank_, size_, ncclGetErrorString(async));
      // NCCL noticed a peer's failure (a remote error, a closed connection) before the
      // deadline: the group is as dead as after a timeout, and takes the same failure path.
      const double secs = double(timeout_.count()) / 1000.0;
      throw CollectiveTimeout(fmt::format("NCCL collective {} on group '{}' (rank {} of {}) failed: {}: a peer rank "
                                          "died or its connection broke",
                                          op, name_, rank_, size_, ncclGetErrorString(async)),
                              op, name_, rank_, size_, secs);
    }
    if (async == ncclSuccess) {
      if (!stream && std::string_view(op) == "init") return;
      cudaError_t q = cudaStreamQuery(as_stream(stream));
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) fail("NCCL {} on group '{}': {}", op, name_, cudaGetErrorString(q));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    if (now - start < std::chrono::milliseconds(5)) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  broken_ = true;
  ncclCommAbort(as_comm(comm_));
  comm_ = nullptr;
  const double secs = double(timeout_.count()) / 1000.0;
  throw CollectiveTimeout(fmt::format("NCCL collective {} on group '{}' (rank {} of {}) did not complete within {:.1f} "
                                      "s: a peer rank died, hangs, or runs a different collective",
                                      op, name_, rank_, size_, secs),
                          op, name_, rank_, size_, secs);
}

void NcclCommunicator::all_reduce_sum(void* data, int64_t count, DType dtype, void* stream) {
  check_usable("all_reduce");
  check_nccl(ncclAllReduce(data, data, size_t(count), nccl_type(dtype, "all_reduce"), ncclSum, as_comm(comm_),
                           as_stream(stream)),
             "ncclAllReduce");
  wait("all_reduce", stream);
}

void NcclCommunicator::all_gather(const void* send, void* recv, int64_t count, DType dtype, void* stream) {
  check_usable("all_gather");
  check_nccl(ncclAllGather(send, recv, size_t(count), nccl_type(dtype, "all_gather"), as_comm(comm_),
                           as_stream(stream)),
             "ncclAllGather");
  wait("all_gather", stream);
}

void NcclCommunicator::reduce_scatter(const void* send, void* recv, int64_t count, DType dtype, void* stream) {
  check_usable("reduce_scatter");
  check_nccl(ncclReduceScatter(send, recv, size_t(count), nccl_type(dtype, "reduce_scatter"), ncclSum,
                               as_comm(comm_), as_stream(stream)),
             "ncclReduceScatter");
  wait("reduce_scatter", stream);
}

void NcclCommunicator::all_to_all(const void* send, std::span<const int64_t> send_counts, void* recv,
                                  std::span<const int64_t> recv_counts, void* stream) {
  check_usable("all_to_all");
  if (send_counts.size() != size_t(size_) || recv_counts.size() != size_t(size_))
    fail("all_to_all on NCCL group '{}': {} send and {} recv counts for {} ranks", name_, send_counts.size(),
         recv_counts.size(), size_);
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  int64_t so = 0, ro = 0;
  for (int p = 0; p < size_; ++p) {
    const auto sc = send_counts[size_t(p)], rc = recv_counts[size_t(p)];
    if (sc) check_nccl(ncclSend(static_cast<const char*>(send) + so, size_t(sc), ncclUint8, p, as_comm(comm_),
                                as_stream(stream)), "ncclSend");
    if (rc) check_nccl(ncclRecv(static_cast<char*>(recv) + ro, size_t(rc), ncclUint8, p, as_comm(comm_),
                                as_stream(stream)), "ncclRecv");
    so += sc;
    ro += rc;
  }
  check_nccl(ncclGroupEnd(), "ncclGroupEnd");
  wait("all_to_all", stream);
}

void NcclCommunicator::broadcast(void* data, int64_t bytes, int root, void* stream) {
  check_usable("broadcast");
  if (root < 0 || root >= size_) fail("broadcast on NCCL group '{}': root {} is not one of {} ranks", name_, root, size_);
  check_nccl(ncclBroadcast(data, data, size_t(bytes), ncclUint8, root, as_comm(comm_), as_stream(stream)),
             "ncclBroadcast");
  wait("broadcast", stream);
}

}  // namespace dsi
