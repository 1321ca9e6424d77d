// The experts' CUTLASS grouped GEMM (backend/cuda/expert_gemm.h) against a double-precision
// product of the same inputs (bf16 values, or FP8 codes times their scales), on groups of
// uneven sizes: empty experts, one row, counts that are and are not multiples of the 128-row
// tile, one and two weight stacks per launch, at the fixtures', V2-Lite's and (FP8) V3's widths,
// with every output row poisoned first (NaN stays NaN where a row is missed).
//
// Tolerance. bf16: the products are exact in f32 and accumulate in f32 (K <= 2,048: below 1e-4
// relative). FP8: the tensor cores' sums of each 128-deep slice are promoted to f32 and scaled
// there (their own accumulation keeps at least 13 bits, ~1e-4 relative). The output is then
// rounded to bf16 once, |err| <= u |y| / 2 with u = 2^-8. So both the normalised and the max
// error are bounded by u.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cuda/expert_gemm.h"
#include "core/int_math.h"
#include "kernels_test_util.h"

namespace dsi::cuda::ktest {
namespace {

struct ExpertGemmCase {
  const char* name;
  int64_t n, k;
  std::vector<int32_t> counts;  // rows per expert
  int n_mats;
  bool fp8 = false;
};

// An operand: its values as the kernel sees them (bf16, or e4m3 code x scale) for the
// reference, and its device copy (bf16, or codes plus scales).
struct Operand {
  std::vector<float> values;
  std::vector<float> codes;   // FP8: the e4m3 values, before their scales
  std::vector<float> scales;  // FP8: one per (row block, 128 columns)
};

// rows x k values; FP8: each row_block rows and 128 columns share a scale (1: per row, as the
// activations; 128: per 128 x 128 block, as the weights), n_stacks stacks of `rows` rows.
Operand make_operand(int64_t rows, int64_t k, bool fp8, int row_block, float sigma, Rng& rng) {
  Operand o;
  if (!fp8) {
    o.values = round_to(rng.normal(size_t(rows * k), sigma), DType::bf16);
    return o;
  }
  const int64_t kb = k / 128, rb = (rows + row_block - 1) / row_block;
  o.codes = round_to(rng.normal(size_t(rows * k), 100.0f), DType::f8_e4m3);
  o.scales.resize(size_t(rb * kb));
  for (auto& v : o.scales) v = sigma / 100.0f * float(0.5 + std::fabs(rng.normal(1)[0]));
  o.values.resize(o.codes.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      o.values[size_t(r * k + i)] = o.codes[size_t(r * k + i)] * o.scales[size_t((r / row_block) * kb + i / 128)];
  return o;
}

DeviceMem upload_operand(const Operand& o, bool fp8) {
  return fp8 ? upload(o.codes, DType::f8_e4m3) : upload(o.values, DType::bf16);
}

void run_case(const ExpertGemmCase& c, Rng& rng) {
  const int n_experts = int(c.counts.size());
  std::vector<int32_t> offsets(size_t(n_experts) + 1, 0);
  std::partial_sum(c.counts.begin(), c.counts.end(), offsets.begin() + 1);
  const int64_t rows = offsets.back();
  const Operand x = make_operand(rows, c.k, c.fp8, 1, 1.0f, rng);
  // Each expert's weight its own 128 x 128 scale grid: one operand per expert, stacked.
  const int64_t n_blocks = ceil_div(c.n, 128);
  std::vector<std::vector<Operand>> w(size_t(c.n_mats));
  for (auto& m : w)
    for (int e = 0; e < n_experts; ++e) m.push_back(make_operand(c.n, c.k, c.fp8, 128, 0.05f, rng));
  auto stacked = [](const std::vector<Operand>& parts, std::vector<float> Operand::*field) {
    std::vector<float> all;
    for (const auto& p : parts) all.insert(all.end(), (p.*field).begin(), (p.*field).end());
    return all;
  };

  DeviceMem d_off = upload_raw(offsets), d_x = upload_operand(x, c.fp8),
            d_xs = upload_raw(c.fp8 ? x.scales : std::vector<float>{0.0f});
  std::vector<DeviceMem> d_w, d_ws, d_y;
  ExpertGemmParams p;
  p.fp8 = c.fp8;
  p.n_experts = n_experts;
  p.row_offsets = d_off.as<int32_t>();
  p.x = d_x.get();
  p.x_scale = c.fp8 ? d_xs.as<float>() : nullptr;
  p.n = c.n;
  p.k = c.k;
  p.n_mats = c.n_mats;
  for (int m = 0; m < c.n_mats; ++m) {
    const auto& parts = w[size_t(m)];
    d_w.push_back(c.fp8 ? upload(stacked(parts, &Operand::codes), DType::f8_e4m3)
                        : upload(stacked(parts, &Operand::values), DType::bf16));
    d_ws.push_back(upload_raw(c.fp8 ? stacked(parts, &Operand::scales) : std::vector<float>{0.0f}));
    d_y.emplace_back(size_t(rows * c.n) * 2);
    d_y.back().poison();
    p.mats[m] = {d_w.back().get(), c.n * c.k, d_y.back().get()};
    if (c.fp8) p.mats[m].scale = d_ws.back().as<float>(), p.mats[m].scale_group_stride = n_blocks * (c.k / 128);
  }
  ASSERT_TRUE(expert_gemm_takes(p)) << c.name;
  const DeviceInfo info = query_device(0);
  DeviceMem ws(expert_gemm_workspace_bytes(c.fp8, n_experts, c.n_mats, info.n_sms));
  expert_gemm(p, ws.get(), ws.bytes(), info.n_sms, nullptr);

  for (int m = 0; m < c.n_mats; ++m) {
    std::vector<float> ref(size_t(rows * c.n));
    for (int e = 0; e < n_experts; ++e) {
      const float* we = w[size_t(m)][size_t(e)].values.data();
      for (int64_t r = offsets[size_t(e)]; r < offsets[size_t(e) + 1]; ++r)
        for (int64_t col = 0; col < c.n; ++col) {
          double s = 0;
          for (int64_t i = 0; i < c.k; ++i) s += double(x.values[size_t(r * c.k + i)]) * double(we[col * c.k + i]);
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
      {"FP8, uneven groups, N a partial scale block", 200, 256, {0, 1, 37, 200, 0, 129}, 2, true},
      {"FP8, V3 gate/up widths", 2048, 7168, {40, 0, 130}, 2, true},
      {"FP8, V3 down widths", 7168, 2048, {3, 90, 0, 64}, 1, true},
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
