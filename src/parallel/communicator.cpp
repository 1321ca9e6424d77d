#include "parallel/communicator.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"

namespace dsi {

void Communicator::all_reduce_sum_bf16(std::span<uint16_t> data) {
  std::vector<float> wide(data.size());
  for (size_t i = 0; i < data.size(); ++i) wide[i] = bf16_to_f32(data[i]);
  all_reduce_sum(wide);
  for (size_t i = 0; i < data.size(); ++i) data[i] = f32_to_bf16(wide[i]);
}

namespace {
void check_sizes(const char* op, size_t send, size_t recv) {
  if (send != recv) fail("{}: send holds {} values, recv {} (one rank)", op, send, recv);
}
}  // namespace

void SelfCommunicator::all_gather(std::span<const float> send, std::span<float> recv) {
  check_sizes("all_gather", send.size(), recv.size());
  std::copy(send.begin(), send.end(), recv.begin());
}

void SelfCommunicator::reduce_scatter(std::span<const float> send, std::span<float> recv) {
  check_sizes("reduce_scatter", send.size(), recv.size());
  std::copy(send.begin(), send.end(), recv.begin());
}

void SelfCommunicator::all_to_all(std::span<const std::byte> send, std::span<const int64_t> send_counts,
                                  std::span<std::byte> recv, std::span<const int64_t> recv_counts) {
  if (send_counts.size() != 1 || recv_counts.size() != 1 || send_counts[0] != recv_counts[0] ||
      size_t(send_counts[0]) > send.size() || size_t(recv_counts[0]) > recv.size())
    fail("all_to_all: counts do not match the buffers (one rank)");
  std::memcpy(recv.data(), send.data(), size_t(send_counts[0]));
}

void SelfCommunicator::broadcast(std::span<std::byte>, int root) {
  if (root != 0) fail("broadcast: root {} is not a rank of a group of one", root);
}

std::unique_ptr<Communicator> SelfCommunicator::split(int, int, const std::string& name) {
  auto c = std::make_unique<SelfCommunicator>(name);
  c->set_timeout(timeout_);
  return c;
}

}  // namespace dsi
