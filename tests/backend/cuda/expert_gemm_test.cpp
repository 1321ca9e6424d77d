// The experts' CUTLASS grouped GEMM (backend/cuda/expert_gemm.h) against a double-precision
// product of the same bf16 inputs, on groups of uneven sizes: empty experts, one row, counts
// that are and are not multiples of the 128-row tile, one and two weight stacks per launch, at
// the fixtures' and V2-Lite's widths, with every output row poisoned first (NaN stays NaN where
// a row is missed).
//
// Tolerance. The products of bf16 values are exact in f32 and accumulate in f32 (K <= 2,048:
// below 1e-4 relative); the output is then rounded to bf16 once, |err| <= u |y| / 2 with
// u = 2^-8. So both the normalised and the max error are bounded by u.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "backend/cuda/expert_gemm.h"
#include "kernels_test_util.h"

namespace dsi::cuda::ktest {
namespace {

struct ExpertGemmCase {
  const char* name;
  int64_t n, k;
  std::vector<int32_t> counts;  // rows per expert
  int n_mats;
};

void run_case(const ExpertGemmCase& c, Rng& rng) {
  const int n_experts = int(c.counts.size());
  std::vector<int32_t> offsets(size_t(n_experts) + 1, 0);
  std::partial_sum(c.counts.begin(), c.counts.end(), offsets.begin() + 1);
  const int64_t rows = offsets.back();
  const auto x = round_to(rng.normal(size_t(rows * c.k)), DType::bf16);
  std::vector<std::vector<float>> w(size_t(c.n_mats));
  for (auto& m : w) m = round_to(rng.normal(size_t(n_experts) * size_t(c.n * c.k), 0.05f), DType::bf16);

  DeviceMem d_off = upload_raw(offsets), d_x = upload(x, DType::bf16);
  std::vector<DeviceMem> d_w, d_y;
  ExpertGemmParams p;
  p.n_experts = n_experts;
  p.row_offsets = d_off.as<int32_t>();
  p.x = d_x.get();
  p.n = c.n;
  p.k = c.k;
  p.n_mats = c.n_mats;
  for (int m = 0; m < c.n_mats; ++m) {
    d_w.push_back(upload(w[size_t(m)], DType::bf16));
    d_y.emplace_back(size_t(rows * c.n) * 2);
    d_y.back().poison();
    p.mats[m] = {d_w.back().get(), c.n * c.k, d_y.back().get()};
  }
  ASSERT_TRUE(expert_gemm_takes(p)) << c.name;
  const DeviceInfo info = query_device(0);
  DeviceMem ws(expert_gemm_workspace_bytes(n_experts, c.n_mats, info.n_sms));
  expert_gemm(p, ws.get(), ws.bytes(), info.n_sms, nullptr);

  for (int m = 0; m < c.n_mats; ++m) {
    std::vector<float> ref(size_t(rows * c.n));
    for (int e = 0; e < n_experts; ++e) {
      const float* we = w[size_t(m)].data() + size_t(e) * size_t(c.n * c.k);
      for (int64_t r = offsets[size_t(e)]; r < offsets[size_t(e) + 1]; ++r)
        for (int64_t col = 0; col < c.n; ++col) {
          double s = 0;
          for (int64_t i = 0; i < c.k; ++i) s += double(x[size_t(r * c.k + i)]) * double(we[col * c.k + i]);
          ref[size_t(r * c.n + col)] = float(s);
        }
    }
    const std::string what = std::string("expert_gemm ") + c.name + " matrix " + std::to_string(m);
    expect_close(download(d_y[size_t(m)], DType::bf16, ref.size()), ref, kBf16U, kBf16U, what);
  }
}

TEST(CudaExpertGemm, GroupedProductsMatchDoubleReference) {
  require_gpu();
  if (!expert_gemm_built()) GTEST_SKIP() << "this build has no CUTLASS";
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const ExpertGemmCase cases[] = {
      {"uneven groups, K not whole 64-deep tiles", 64, 200, {0, 1, 37, 200, 0, 129, 128, 300}, 2},
      {"one expert holds every row", 96, 256, {0, 0, 513, 0}, 1},
      {"V2-Lite gate/up widths", 1408, 2048, {150, 0, 333, 17}, 2},
      {"V2-Lite down widths", 2048, 1408, {64, 200, 1, 0, 250, 7}, 1},
  };
  for (const auto& c : cases) run_case(c, rng);
}

TEST(CudaExpertGemm, RefusesWhatItDoesNotTake) {
  ExpertGemmParams p;
  p.n_experts = 4;
  p.n = 100;  // not whole 16-byte rows
  p.k = 64;
  EXPECT_FALSE(expert_gemm_takes(p));
  p.n = 128;
  p.n_mats = 3;
  EXPECT_FALSE(expert_gemm_takes(p));
}

}  // namespace
}  // namespace dsi::cuda::ktest
