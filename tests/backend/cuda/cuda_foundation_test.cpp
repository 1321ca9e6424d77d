// The CUDA foundation on a real device: device query, the arena's alignment and exhaustion,
// pinned staging uploads larger than its chunks, and error reporting of a failed call.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/cuda/stream.h"
#include "core/error.h"
#include "cuda_test_util.h"

namespace dsi::cuda::test {
namespace {

TEST(CudaFoundation, DeviceQueryDescribesTheGpu) {
  require_gpu();
  const DeviceInfo d = query_device(0);
  std::printf("  %s\n", describe(d).c_str());
  EXPECT_GE(d.cc_major, 7);
  EXPECT_GT(d.n_sms, 0);
  EXPECT_GT(d.total_memory, int64_t(1) << 30);
  EXPECT_GT(d.free_memory, 0);
  EXPECT_GT(d.cublaslt_version, 0u);
  EXPECT_THROW(query_device(cuda_device_count()), Error);
}

TEST(CudaFoundation, ArenaAlignsResetsAndRefusesOverflow) {
  require_gpu();
  DeviceArena arena(1 << 20);
  auto* a = static_cast<unsigned char*>(arena.alloc(10));
  auto* b = static_cast<unsigned char*>(arena.alloc(10));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % DeviceArena::kAlignment, 0u);
  EXPECT_EQ(b - a, ptrdiff_t(DeviceArena::kAlignment));
  const size_t m = arena.mark();
  arena.alloc(1000);
  arena.reset(m);
  EXPECT_EQ(arena.used(), m);
  EXPECT_GE(arena.high_water(), m + 1000);
  try {
    arena.alloc(2 << 20);
    ADD_FAILURE() << "an allocation beyond the arena was granted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("DeviceArena"), std::string::npos);
  }
  // The memory is real: write and read back through it.
  DSI_CUDA_CHECK(cudaMemset(a, 0x5a, 10));
  unsigned char h[10];
  DSI_CUDA_CHECK(cudaMemcpy(h, a, 10, cudaMemcpyDeviceToHost));
  for (unsigned char c : h) EXPECT_EQ(c, 0x5a);
}

TEST(CudaFoundation, PinnedStagingRoundTripsMoreThanItsChunks) {
  require_gpu();
  Stream s;
  PinnedStaging staging(64 << 10);  // two 32 KiB halves
  Rng rng;
  auto v = rng.normal(300000);  // 1.2 MB: many chunks, a partial last one
  DeviceBuffer d(v.size() * 4);
  DSI_CUDA_CHECK(cudaMemset(d.data(), 0xff, d.size()));
  staging.upload(d.data(), v.data(), v.size() * 4, s.get());
  std::vector<float> back(v.size(), 0.0f);
  staging.download(back.data(), d.data(), back.size() * 4, s.get());
  EXPECT_EQ(std::memcmp(back.data(), v.data(), v.size() * 4), 0);
}

TEST(CudaFoundation, FailedCallsThrowNamingTheCall) {
  require_gpu();
  try {
    DSI_CUDA_CHECK(cudaMemcpy(nullptr, reinterpret_cast<void*>(16), 1, cudaMemcpyDeviceToDevice));
    ADD_FAILURE() << "a copy from an invalid pointer succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cudaMemcpy"), std::string::npos) << e.what();
  }
  (void)cudaGetLastError();
}

}  // namespace
}  // namespace dsi::cuda::test
