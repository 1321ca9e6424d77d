#include "parallel/mpi_communicator.h"

#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/log.h"

namespace dsi {

namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("MPI {} failed: {}", what, std::string(text, size_t(len)));
}

MPI_Comm& as_comm(void* p) { return *static_cast<MPI_Comm*>(p); }

std::vector<std::byte> bytes_of(const void* p, size_t n) {
  std::vector<std::byte> v(n);
  if (n) std::memcpy(v.data(), p, n);
  return v;
}

// MPI counts are int: a message past 2 GiB would need derived datatypes (not needed yet).
int as_count(int64_t n, const char* op) {
  if (n < 0 || n > int64_t(INT32_MAX)) fail("{}: {} bytes is outside what one MPI message carries here", op, n);
  return int(n);
}

}  // namespace

MpiSession::MpiSession() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) fail("MPI is already initialised: create one MpiSession per process");
  int provided = 0;
  // Serialized: the engine thread makes every MPI call, which need not be the main thread.
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_SERIALIZED) spdlog::warn("MPI provides thread level {} (< SERIALIZED)", provided);
  // Errors come back as codes (turned into dsi::Error), not as an abort inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

void MpiSession::abort_all(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
}

MpiSession::~MpiSession() {
  if (finalize_) MPI_Finalize();
}

struct MpiCommunicator::Pending {
  MPI_Request request;
  std::vector<std::vector<std::byte>> buffers;
};

MpiCommunicator::MpiCommunicator(void* comm, std::string name) : comm_(comm), name_(std::move(name)) {
  MPI_Comm_set_errhandler(as_comm(comm_), MPI_ERRORS_RETURN);
  MPI_Comm_rank(as_comm(comm_), &rank_);
  MPI_Comm_size(as_comm(comm_), &size_);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::world() {
  auto* c = new MPI_Comm;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, c), "MPI_Comm_dup");
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(c, "world"));
}

MpiCommunicator::~MpiCommunicator() {
  // A timed-out request may still complete if the late peer shows up; give it a moment, then
  // leave it (and its buffers) to the process's end rather than free memory MPI may write.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (auto& p : abandoned_) {
    int done = 0;
    while (!done && std::chrono::steady_clock::now() < until) {
      MPI_Test(&p->request, &done, MPI_STATUS_IGNORE);
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!done) (void)p.release();  // deliberately leaked: MPI may still write into it
  }
  if (!broken_) MPI_Comm_free(&as_comm(comm_));
  delete &as_comm(comm_);
}

void MpiCommunicator::check_usable(const char* op) const {
  if (broken_) fail("{} on group '{}': the group is unusable after an earlier collective timed out", op, name_);
}

void MpiCommunicator::wait(const char* op, void* request, std::vector<std::vector<std::byte>>&& buffers) {
  MPI_Request& req = *static_cast<MPI_Request*>(request);
  const auto start = std::chrono::steady_clock::now(), deadline = start + timeout_;
  int done = 0;
  for (;;) {
    check_mpi(MPI_Test(&req, &done, MPI_STATUS_IGNORE), op);
    if (done) return;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    // Spin briefly (a decode step's collectives are microseconds apart), then back off.
    if (now - start < std::chrono::milliseconds(5)) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  broken_ = true;
  abandoned_.push_back(std::make_unique<Pending>(Pending{req, std::move(buffers)}));
  const double secs = double(timeout_.count()) / 1000.0;
  throw CollectiveTimeout(fmt::format("collective {} on group '{}' (rank {} of {}) did not complete within {:.1f} s: a "
                                      "peer rank died, hangs, or runs a different collective",
                                      op, name_, rank_, size_, secs),
                          op, name_, rank_, size_, secs);
}

// Gathers everyone's values, then sums them in rank order (see the header).
void MpiCommunicator::all_reduce_sum(std::span<float> data) {
  check_usable("all_reduce");
  if (size_ == 1 || data.empty()) return;
  const size_t n = data.size();
  std::vector<std::vector<std::byte>> bufs;
  bufs.push_back(bytes_of(data.data(), n * 4));
  bufs.emplace_back(n * 4 * size_t(size_));
  MPI_Request req;
  int count = as_count(int64_t(n) * 4, "all_reduce");
  check_mpi(MPI_Iallgather(bufs[0].data(), count, MPI_BYTE, bufs[1].data(), count, MPI_BYTE, as_comm(comm_), &req),
            "all_reduce");
  const std::byte* all = bufs[1].data();
  wait("all_reduce", &req, std::move(bufs));
  // bufs was moved from only on timeout (wait throws then); on success it still owns `all`.
  const float* parts = reinterpret_cast<const float*>(all);
  for (size_t i = 0; i < n; ++i) {
    float s = parts[i];
    for (int r = 1; r < size_; ++r) s += parts[size_t(r) * n + i];
    data[i] = s;
  }
}

void MpiCommunicator::all_gather(std::span<const float> send, std::span<float> recv) {
  check_usable("all_gather");
  if (recv.size() != send.size() * size_t(size_))
    fail("all_gather on group '{}': recv holds {} values, expected {} ranks x {}", name_, recv.size(), size_,
         send.size());
  std::vector<std::vector<std::byte>> bufs;
  bufs.push_back(bytes_of(send.data(), send.size() * 4));
  bufs.emplace_back(recv.size() * 4);
  MPI_Request req;
  int count = as_count(int64_t(send.size()) * 4, "all_gather");
  check_mpi(MPI_Iallgather(bufs[0].data(), count, MPI_BYTE, bufs[1].data(), count, MPI_BYTE, as_comm(comm_), &req),
            "all_gather");
  const std::byte* out = bufs[1].data();
  wait("all_gather", &req, std::move(bufs));
  std::memcpy(recv.data(), out, recv.size() * 4);
}

void MpiCommunicator::reduce_scatter(std::span<const float> send, std::span<float> recv) {
  check_usable("reduce_scatter");
  const size_t n = recv.size();
  if (send.size() != n * size_t(size_))
    fail("reduce_scatter on group '{}': send holds {} values, expected {} ranks x {}", name_, send.size(), size_, n);
  std::vector<std::vector<std::byte>> bufs;
  bufs.push_back(bytes_of(send.data(), send.size() * 4));
  bufs.emplace_back(send.size() * 4);
  MPI_Request req;
  int count = as_count(int64_t(n) * 4, "reduce_scatter");
  // Block p of every rank goes to rank p; each then sums its blocks in rank order.
  check_mpi(MPI_Ialltoall(bufs[0].data(), count, MPI_BYTE, bufs[1].data(), count, MPI_BYTE, as_comm(comm_), &req),
            "reduce_scatter");
  const float* parts = reinterpret_cast<const float*>(bufs[1].data());
  wait("reduce_scatter", &req, std::move(bufs));
  for (size_t i = 0; i < n; ++i) {
    float s = parts[i];
    for (int r = 1; r < size_; ++r) s += parts[size_t(r) * n + i];
    recv[i] = s;
  }
}

void MpiCommunicator::all_to_all(std::span<const std::byte> send, std::span<const int64_t> send_counts,
                                 std::span<std::byte> recv, std::span<const int64_t> recv_counts) {
  check_usable("all_to_all");
  if (send_counts.size() != size_t(size_) || recv_counts.size() != size_t(size_))
    fail("all_to_all on group '{}': {} send and {} recv counts for {} ranks", name_, send_counts.size(),
         recv_counts.size(), size_);
  const size_t n_peers = size_t(size_);
  std::vector<int> sc(n_peers), rc(n_peers), sd(n_peers), rd(n_peers);
  int64_t st = 0, rt = 0;
  for (int p = 0; p < size_; ++p) {
    sc[size_t(p)] = as_count(send_counts[size_t(p)], "all_to_all");
    rc[size_t(p)] = as_count(recv_counts[size_t(p)], "all_to_all");
    sd[size_t(p)] = as_count(st, "all_to_all");
    rd[size_t(p)] = as_count(rt, "all_to_all");
    st += send_counts[size_t(p)];
    rt += recv_counts[size_t(p)];
  }
  if (size_t(st) > send.size() || size_t(rt) > recv.size())
    fail("all_to_all on group '{}': counts total {} bytes to send and {} to receive, buffers hold {} and {}", name_,
         st, rt, send.size(), recv.size());
  std::vector<std::vector<std::byte>> bufs;
  bufs.push_back(bytes_of(send.data(), size_t(st)));
  bufs.emplace_back(size_t(std::max<int64_t>(rt, 1)));
  MPI_Request req;
  check_mpi(MPI_Ialltoallv(bufs[0].data(), sc.data(), sd.data(), MPI_BYTE, bufs[1].data(), rc.data(), rd.data(),
                           MPI_BYTE, as_comm(comm_), &req),
            "all_to_all");
  const std::byte* out = bufs[1].data();
  wait("all_to_all", &req, std::move(bufs));
  if (rt) std::memcpy(recv.data(), out, size_t(rt));
}

void MpiCommunicator::broadcast(std::span<std::byte> data, int root) {
  check_usable("broadcast");
  if (root < 0 || root >= size_) fail("broadcast on group '{}': root {} is not one of {} ranks", name_, root, size_);
  std::vector<std::vector<std::byte>> bufs;
  bufs.push_back(bytes_of(data.data(), data.size()));
  MPI_Request req;
  check_mpi(MPI_Ibcast(bufs[0].data(), as_count(int64_t(data.size()), "broadcast"), MPI_BYTE, root, as_comm(comm_),
                       &req),
            "broadcast");
  const std::byte* out = bufs[0].data();
  wait("broadcast", &req, std::move(bufs));
  if (!data.empty()) std::memcpy(data.data(), out, data.size());
}

void MpiCommunicator::barrier() {
  check_usable("barrier");
  MPI_Request req;
  check_mpi(MPI_Ibarrier(as_comm(comm_), &req), "barrier");
  wait("barrier", &req, {});
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key, const std::string& name) {
  check_usable("split");
  auto* c = new MPI_Comm;
  // Blocking, but only at startup, right after a barrier that has its timeout.
  barrier();
  int rc = MPI_Comm_split(as_comm(comm_), color, key, c);
  if (rc != MPI_SUCCESS) {
    delete c;
    check_mpi(rc, "MPI_Comm_split");
  }
  auto out = std::unique_ptr<MpiCommunicator>(new MpiCommunicator(c, name));
  out->set_timeout(timeout_);
  return out;
}

}  // namespace dsi
