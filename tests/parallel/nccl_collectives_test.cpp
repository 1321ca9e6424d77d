// The model's NCCL device collectives (parallel/nccl_collectives.h) with one rank on a real
// GPU (label cuda): the CUDA backend's tensors and stream, NCCL forced over a group of one.
// The all-reduce is the identity, the row all-to-all copies the counted rows, and the DP
// expert exchange over NCCL gives exactly the experts run locally. (Several ranks need a GPU
// each: NCCL refuses two ranks of one group on one device.)
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backend/backend_factory.h"
#include "backend/cuda_entry.h"
#include "backend/ops.h"
#include "model/expert_exchange.h"
#include "parallel/nccl_collectives.h"

namespace dsi {
namespace {

class NcclCollectivesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: the `cuda`-labelled tests need a GPU";
    BackendOptions o;
    o.device = DeviceKind::device_cuda;
    o.dtype = "bfloat16";
    be = make_backend(o);
    clock = std::make_shared<CommunicationClock>();
    nccl = std::make_unique<NcclCollectives>(std::make_shared<SelfCommunicator>("world"), *be, clock);
  }
  // A device tensor of `dtype` holding `v` (rounded to the dtype).
  Buffer upload(const std::vector<float>& v, DType dtype, int64_t rows, int64_t cols) {
    Buffer b = be->alloc(dtype, rows, cols);
    if (dtype == DType::f32) {
      be->copy_from_host(v.data(), b.t);
    } else {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
      be->copy_from_host(h.data(), b.t);
    }
    be->synchronize();
    return b;
  }
  std::vector<std::byte> bytes(const Tensor& t) {
    std::vector<std::byte> out(size_t(t.numel()) * dtype_size(t.dtype));
    be->copy_to_host(t, out.data());
    return out;
  }
  std::vector<float> random(size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
  }

  std::unique_ptr<Backend> be;
  std::shared_ptr<CommunicationClock> clock;
  std::unique_ptr<NcclCollectives> nccl;
  std::mt19937 rng{3};
  std::uniform_real_distribution<float> u{-1, 1};
};

TEST_F(NcclCollectivesTest, OneRankAllReduceIsTheIdentityAndTheAllToAllCopiesRows) {
  EXPECT_STREQ(nccl->transport(), "nccl");
  EXPECT_EQ(nccl->size(), 1);
  for (DType dtype : {DType::bf16, DType::f32}) {
    Buffer a = upload(random(7 * 33), dtype, 7, 33);
    const auto before = bytes(a.t);
    nccl->all_reduce_sum(a.t);
    EXPECT_EQ(bytes(a.t), before) << dtype_name(dtype);

    Buffer b = upload(std::vector<float>(9 * 33, -2.0f), dtype, 9, 33);
    const std::vector<int64_t> rows = {5};
    nccl->all_to_all(a.t, rows, b.t, rows);
    const auto got = bytes(b.t);
    const size_t five = 5 * 33 * dtype_size(dtype);
    EXPECT_EQ(std::memcmp(got.data(), before.data(), five), 0) << dtype_name(dtype);
    const auto untouched = bytes(upload(std::vector<float>(4 * 33, -2.0f), dtype, 4, 33).t);
    EXPECT_EQ(std::memcmp(got.data() + five, untouched.data(), untouched.size()), 0) << dtype_name(dtype);
  }
  // Every call counted on the communication clock.
  EXPECT_EQ(clock->calls(), 4);
  Buffer i = be->alloc(DType::i32, 1, 4);
  EXPECT_THROW(nccl->all_reduce_sum(i.t), Error);
}

TEST_F(NcclCollectivesTest, OneRankExpertExchangeEqualsTheExpertsRunLocally) {
  const int n_experts = 4;
  const int64_t hidden = 64, width = 32;
  const std::vector<int32_t> counts = {3, 0, 9, 5};
  const int64_t m = 17;
  // Host f32 experts; the backend stacks them in bf16.
  std::vector<std::vector<float>> host;
  ExpertMlpWeights experts;
  for (auto [w, rows, cols] : {std::tuple{&experts.gate, width, hidden}, {&experts.up, width, hidden},
                               {&experts.down, hidden, width}}) {
    std::vector<Weight> one(n_experts);
    for (int e = 0; e < n_experts; ++e) {
      host.push_back(random(size_t(rows * cols)));
      one[size_t(e)].w = Tensor::matrix(host.back().data(), DType::f32, rows, cols);
    }
    *w = be->upload_experts(one, nullptr);
  }
  Buffer x = upload(random(size_t(m * hidden)), DType::bf16, m, hidden);
  Buffer want = be->alloc(DType::bf16, m, hidden), gate = be->alloc(DType::bf16, m, width),
         up = be->alloc(DType::bf16, m, width);
  std::vector<int32_t> offsets_host = {0};
  for (int32_t c : counts) offsets_host.push_back(offsets_host.back() + c);
  Buffer offsets = be->alloc(DType::i32, 1, n_experts + 1);
  be->copy_from_host(offsets_host.data(), offsets.t);
  ops::moe_grouped_mlp(*be, x.t, offsets.t, experts, gate.t, up.t, want.t);

  Buffer y = upload(std::vector<float>(size_t(m * hidden), -3.0f), DType::bf16, m, hidden);
  ExpertExchange exchange(*be, n_experts, 1, hidden, width);
  exchange.run(*nccl, experts, x.t, counts, y.t);
  const auto got = bytes(y.t), expected = bytes(want.t);
  EXPECT_EQ(got, expected);
  // NaN-free (0x7f80 exponent all ones in bf16) and not the poison left before the exchange.
  for (size_t i = 0; i < got.size(); i += 2) {
    uint16_t h;
    std::memcpy(&h, got.data() + i, 2);
    ASSERT_NE(h & 0x7f80, 0x7f80) << "row " << i / 2 / size_t(hidden) << ": not finite";
  }
  // An idle step: nothing of its own, nothing sent to it.
  const std::vector<int32_t> none(size_t(n_experts), 0);
  exchange.run(*nccl, experts, x.t.slice_rows(0, 0), none, y.t.slice_rows(0, 0));
}

}  // namespace
}  // namespace dsi
