// The NCCL communicator with one rank on the GPU (label cuda): bootstrap through the host
// communicator, then every collective on device memory against what a group of one must
// give. (Two ranks need two GPUs: NCCL refuses two ranks of one group on one device.)
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "parallel/nccl_communicator.h"

namespace dsi {
namespace {

struct DeviceBuffer {
  explicit DeviceBuffer(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, bytes), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
  void* p = nullptr;
};

std::vector<float> iota_floats(size_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.5f);
  return v;
}

TEST(NcclCommunicator, OneRankCollectivesOnDeviceMemory) {
  SelfCommunicator host;
  NcclCommunicator nccl(host, "nccl_world");
  EXPECT_EQ(nccl.size(), 1);
  EXPECT_EQ(nccl.rank(), 0);
  const size_t n = 4096;
  const auto in = iota_floats(n);
  DeviceBuffer a(n * 4), b(n * 4);
  std::vector<float> out(n);

  ASSERT_EQ(cudaMemcpy(a.p, in.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
  nccl.all_reduce_sum(a.p, int64_t(n), DType::f32, nullptr);
  ASSERT_EQ(cudaMemcpy(out.data(), a.p, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out, in);

  nccl.all_gather(a.p, b.p, int64_t(n), DType::f32, nullptr);
  ASSERT_EQ(cudaMemcpy(out.data(), b.p, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out, in);

  ASSERT_EQ(cudaMemset(b.p, 0, n * 4), cudaSuccess);
  nccl.reduce_scatter(a.p, b.p, int64_t(n), DType::f32, nullptr);
  ASSERT_EQ(cudaMemcpy(out.data(), b.p, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out, in);

  ASSERT_EQ(cudaMemset(b.p, 0, n * 4), cudaSuccess);
  const std::vector<int64_t> counts = {int64_t(n * 4)};
  nccl.all_to_all(a.p, counts, b.p, counts, nullptr);
  ASSERT_EQ(cudaMemcpy(out.data(), b.p, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out, in);

  nccl.broadcast(a.p, int64_t(n * 4), 0, nullptr);
  ASSERT_EQ(cudaMemcpy(out.data(), a.p, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out, in);
}

TEST(NcclCommunicator, RejectsUnsupportedDtypesAndRoots) {
  SelfCommunicator host;
  NcclCommunicator nccl(host, "nccl_world");
  DeviceBuffer a(64);
  EXPECT_THROW(nccl.all_reduce_sum(a.p, 4, DType::i32, nullptr), Error);
  EXPECT_THROW(nccl.broadcast(a.p, 16, 1, nullptr), Error);
}

}  // namespace
}  // namespace dsi
