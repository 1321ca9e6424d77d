// The CUDA MoE steps against the CPU backend, the oracle, on fresh random inputs: routing for
// every method of the fixtures and the real V2 / V2-Lite / V3 configurations (with exact ties
// in scores, biases and group scores), the dispatch permutation (exact), and the grouped expert
// MLP with combine against the CPU's moe_dispatch / moe_grouped_mlp / moe_combine (+ the shared
// expert's output) for bf16 and FP8 weights, bf16 and f32 activations, at the fixtures' and the
// real models' widths.
//
// Tolerances. Expert ids and counts must be identical (ties go to the lower index in both).
// Routing weights: f32 with CUDA's expf against glibc's (each within 2 ulp) and a softmax sum
// in another order: 1e-6 (~17 u, u = 2^-24). Expert MLP, f32 activations: f32 sums in another
// order over K <= 7168: 1e-5 (~170 u). bf16 activations: four roundings to bf16 in series
// (weights after scaling, the gated activation, the expert outputs, the combined output),
// each |err| <= u_bf16 |x| with u_bf16 = 2^-8: 4 u_bf16 for the normalised and the max error.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <utility>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/moe.h"
#include "kernels_test_util.h"

namespace dsi::cuda::ktest {
namespace {

const char* dname(DType t) { return t == DType::bf16 ? "bf16" : t == DType::f8_e4m3 ? "fp8" : "f32"; }

struct RouteCase {
  const char* name;
  RoutingParams p;
};

RoutingParams softmax_greedy(int e, int k, float scaling) {
  return {e, k, 1, 1, RoutingScore::routing_score_softmax, RoutingGroupScore::routing_group_none, false, false,
          scaling};
}
RoutingParams softmax_groups(int e, int k, int groups, int topk_group, float scaling) {
  return {e, k, groups, topk_group, RoutingScore::routing_score_softmax, RoutingGroupScore::routing_group_max, false,
          false, scaling};
}
RoutingParams noaux_tc(int e, int k, int groups, int topk_group, float scaling) {
  return {e, k, groups, topk_group, RoutingScore::routing_score_sigmoid, RoutingGroupScore::routing_group_top2_sum,
          true, true, scaling};
}

const RouteCase kRouteCases[] = {
    {"tiny-v2-lite greedy", softmax_greedy(8, 3, 1.0f)},
    {"V2-Lite greedy (64 experts, top 6)", softmax_greedy(64, 6, 1.0f)},
    {"tiny-v2-group group_limited_greedy", softmax_groups(12, 3, 4, 2, 16.0f)},
    {"V2 group_limited_greedy (160, top 6, 8 groups, 3 kept)", softmax_groups(160, 6, 8, 3, 16.0f)},
    {"tiny-v3-odd noaux_tc (9 experts, 3 groups)", noaux_tc(9, 3, 3, 2, 2.5f)},
    {"tiny-v3-fp8 noaux_tc (16 experts, 4 groups)", noaux_tc(16, 4, 4, 2, 2.5f)},
    {"V3 noaux_tc (256, top 8, 8 groups, 4 kept)", noaux_tc(256, 8, 8, 4, 2.5f)},
};

// Logits for n tokens: the first half continuous, the second on a grid of 0.5 so that equal
// scores, equal group maxima and equal top-2 sums occur often.
std::vector<float> route_logits(int n, int e, Rng& rng) {
  auto v = rng.normal(size_t(n) * e, 2.0f);
  for (size_t i = size_t(n / 2) * e; i < v.size(); ++i) v[i] = std::round(v[i] * 2.0f) / 2.0f;
  return v;
}

struct RouteResult {
  std::vector<int32_t> ids, counts;
  std::vector<float> weights;
};

RouteResult route_on_gpu(const RoutingParams& rp, const std::vector<float>& logits, const std::vector<float>& bias,
                         int n) {
  DeviceMem d_logits = upload(logits, DType::f32), d_bias = upload(bias, DType::f32);
  DeviceMem d_ids(size_t(n) * rp.top_k * 4), d_w(size_t(n) * rp.top_k * 4), d_counts(size_t(rp.n_experts) * 4);
  d_ids.poison();
  d_w.poison();
  d_counts.poison();
  MoeRouteParams p;
  p.routing = rp;
  p.n_tokens = n;
  p.logits = d_logits.as<float>();
  p.logits_ld = rp.n_experts;
  p.score_bias = d_bias.as<float>();
  p.expert_ids = d_ids.as<int32_t>();
  p.expert_weights = d_w.as<float>();
  p.expert_counts = d_counts.as<int32_t>();
  moe_route(p, nullptr);
  return {download_raw<int32_t>(d_ids, size_t(n) * rp.top_k), download_raw<int32_t>(d_counts, size_t(rp.n_experts)),
          download(d_w, DType::f32, size_t(n) * rp.top_k)};
}

TEST(CudaMoe, RouteMatchesCpuIncludingTies) {
  require_gpu();
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int n = 333;
  for (const auto& c : kRouteCases) {
    const RoutingParams& rp = c.p;
    const auto logits = route_logits(n, rp.n_experts, rng);
    auto bias = rng.normal(size_t(rp.n_experts), 0.5f);
    for (auto& b : bias) b = std::round(b * 4.0f) / 4.0f;  // equal biases too
    std::vector<int32_t> ref_ids(size_t(n) * rp.top_k);
    std::vector<float> ref_w(size_t(n) * rp.top_k);
    std::vector<float> logits_host = logits, bias_host = bias;
    std::vector<int32_t> cpu_counts(size_t(rp.n_experts), -1);
    cpu::CpuBackend cpu;
    cpu.moe_route(Tensor::matrix(logits_host.data(), DType::f32, n, rp.n_experts),
                  Tensor::matrix(bias_host.data(), DType::f32, 1, rp.n_experts), rp,
                  Tensor::matrix(ref_ids.data(), DType::i32, n, rp.top_k),
                  Tensor::matrix(ref_w.data(), DType::f32, n, rp.top_k),
                  Tensor::matrix(cpu_counts.data(), DType::i32, 1, rp.n_experts));
    const RouteResult got = route_on_gpu(rp, logits, bias, n);
    int64_t n_diff = 0;
    for (size_t i = 0; i < ref_ids.size(); ++i)
      if (got.ids[i] != ref_ids[i] && n_diff++ < 3)
        ADD_FAILURE() << c.name << ": token " << i / size_t(rp.top_k) << " choice " << i % size_t(rp.top_k)
                      << " is expert " << got.ids[i] << ", the CPU chose " << ref_ids[i];
    EXPECT_EQ(n_diff, 0) << c.name;
    std::vector<int32_t> ref_counts(size_t(rp.n_experts), 0);
    for (int32_t e : ref_ids) ++ref_counts[size_t(e)];
    EXPECT_EQ(got.counts, ref_counts) << c.name;
    EXPECT_EQ(cpu_counts, ref_counts) << c.name << " (the CPU's own counts)";
    expect_close(got.weights, ref_w, 1e-6, 1e-6, std::string("route weights ") + c.name);
    std::printf("[result] %-58s ids %s\n", (std::string("route ids ") + c.name).c_str(), n_diff ? "DIFFER" : "equal");
  }
}

// ---- dispatch

struct Dispatched {
  std::vector<int32_t> offsets, row_map;
  std::vector<float> x_sorted;
};

Dispatched dispatch_on_gpu(const std::vector<int32_t>& ids, const std::vector<float>& x, int n, int k, int n_experts,
                           int64_t hidden, DType act) {
  DeviceMem d_ids = upload_raw(ids), d_x = upload(x, act);
  DeviceMem d_off(size_t(n_experts + 1) * 4), d_map(size_t(n) * k * 4),
      d_sorted(size_t(n) * k * hidden * dtype_size(act));
  d_off.poison();
  d_map.poison();
  d_sorted.poison();
  MoeDispatchParams p;
  p.n_tokens = n;
  p.top_k = k;
  p.n_experts = n_experts;
  p.expert_ids = d_ids.as<int32_t>();
  p.expert_offsets = d_off.as<int32_t>();
  p.row_map = d_map.as<int32_t>();
  p.act_dtype = act;
  p.hidden = hidden;
  p.x = d_x.get();
  p.x_ld = hidden;
  p.x_sorted = d_sorted.get();
  p.x_sorted_ld = hidden;
  moe_dispatch(p, nullptr);
  return {download_raw<int32_t>(d_off, size_t(n_experts) + 1), download_raw<int32_t>(d_map, size_t(n) * k),
          download(d_sorted, act, size_t(n) * k * hidden)};
}

// k distinct experts per token, drawn from a skewed distribution: some experts get many rows
// (several 64-row tiles), some none.
std::vector<int32_t> skewed_ids(int n, int k, int n_experts, Rng& rng) {
  std::vector<double> w(static_cast<size_t>(n_experts));
  for (int e = 0; e < n_experts; ++e) w[size_t(e)] = e % 5 == 3 ? 0.0 : 1.0 / (1.0 + e % 7);
  std::vector<int32_t> ids;
  for (int t = 0; t < n; ++t) {
    std::vector<double> wt = w;
    for (int j = 0; j < k; ++j) {
      std::discrete_distribution<int> d(wt.begin(), wt.end());
      const int e = d(rng.gen);
      ids.push_back(e);
      wt[size_t(e)] = 0.0;
      if (std::all_of(wt.begin(), wt.end(), [](double v) { return v == 0.0; })) wt.assign(wt.size(), 1.0);
    }
  }
  return ids;
}

TEST(CudaMoe, DispatchIsAStableSortByExpert) {
  require_gpu();
  Rng rng;
  SCOPED_TRACE(rng.trace());
  struct Case {
    int n, k, e;
    int64_t hidden;
    DType act;
  };
  // 1500 x 8 slots: several 1024-slot chunks; hidden 200 bf16: rows too odd for 16-byte copies.
  for (const Case c : {Case{1500, 8, 256, 7168, DType::bf16}, Case{37, 3, 9, 200, DType::bf16},
                       Case{300, 6, 64, 2048, DType::f32}, Case{1, 8, 256, 64, DType::f32}}) {
    const auto ids = skewed_ids(c.n, c.k, c.e, rng);
    const auto x = round_to(rng.normal(size_t(c.n) * c.hidden), c.act);
    const Dispatched got = dispatch_on_gpu(ids, x, c.n, c.k, c.e, c.hidden, c.act);
    std::vector<int32_t> offsets(size_t(c.e) + 1, 0), fill, row_map(ids.size());
    for (int32_t e : ids) ++offsets[size_t(e) + 1];
    std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
    fill.assign(offsets.begin(), offsets.end() - 1);
    for (size_t i = 0; i < ids.size(); ++i) row_map[i] = fill[size_t(ids[i])]++;
    const std::string what = "dispatch n " + std::to_string(c.n) + " k " + std::to_string(c.k) + " experts " +
                             std::to_string(c.e) + " " + dname(c.act);
    EXPECT_EQ(got.offsets, offsets) << what;
    EXPECT_EQ(got.row_map, row_map) << what;
    int64_t n_diff = 0;
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t col = 0; col < c.hidden; ++col) {
        const float a = got.x_sorted[size_t(row_map[i]) * size_t(c.hidden) + size_t(col)];
        n_diff += a == x[(i / size_t(c.k)) * size_t(c.hidden) + size_t(col)] ? 0 : 1;
      }
    EXPECT_EQ(n_diff, 0) << what << ": x_sorted rows differ from their tokens' rows";
    std::printf("[result] %-58s %s\n", what.c_str(), n_diff == 0 && got.row_map == row_map ? "exact" : "WRONG");
  }
}

// ---- grouped expert MLP + combine

// xorshift: the real models' expert weights are billions of values; mt19937 would dominate.
struct FastRng {
  uint64_t s;
  float uniform() {  // in [-1, 1)
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return float(int64_t(s >> 40) - (int64_t(1) << 23)) / float(1 << 23);
  }
};

// One projection of all experts, stacked [n_experts * rows, cols], with stacked per-expert
// 128 x 128 block scales for FP8.
struct StackedWeight {
  int n_experts;
  int64_t rows, cols, scale_rows, scale_cols;
  DType dtype;
  std::vector<unsigned char> bytes;
  std::vector<float> scale;
  StackedWeight(int e, int64_t r, int64_t c, DType t, FastRng& rng)
      : n_experts(e), rows(r), cols(c), scale_rows((r + 127) / 128), scale_cols((c + 127) / 128), dtype(t) {
    const size_t n = size_t(e) * size_t(r) * size_t(c);
    const float bound = std::sqrt(3.0f / float(c));  // unit-variance outputs for unit-variance inputs
    bytes.resize(n * dtype_size(t));
    if (t == DType::f8_e4m3) {
      for (size_t i = 0; i < n; ++i) bytes[i] = f32_to_fp8_e4m3(rng.uniform() * 448.0f);
      scale.resize(size_t(e) * size_t(scale_rows * scale_cols));
      for (auto& s : scale) s = bound / 448.0f * (1.25f + 0.5f * rng.uniform());
    } else {
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
      for (size_t i = 0; i < n; ++i) h[i] = f32_to_bf16(rng.uniform() * bound);
    }
  }
  Weight expert(int e) {
    Weight w;
    w.w = Tensor::matrix(bytes.data() + size_t(e) * size_t(rows * cols) * dtype_size(dtype), dtype, rows, cols);
    if (!scale.empty())
      w.scale = Tensor::matrix(scale.data() + size_t(e) * size_t(scale_rows * scale_cols), DType::f32, scale_rows,
                               scale_cols);
    return w;
  }
};

struct DeviceStacked {
  DeviceMem data, scale;
  GroupedWeight g;
  explicit DeviceStacked(const StackedWeight& w)
      : data(upload_raw(w.bytes)), scale(upload_raw(w.scale.empty() ? std::vector<float>{0.0f} : w.scale)) {
    g.data = data.get();
    g.dtype = w.dtype;
    g.ld = w.cols;
    g.group_stride = w.rows * w.cols;
    if (w.dtype == DType::f8_e4m3) {
      g.scale = scale.as<float>();
      g.scale_ld = w.scale_cols;
      g.scale_group_stride = w.scale_rows * w.scale_cols;
    }
  }
};

struct ExpertsCase {
  const char* name;
  int64_t hidden, inter;
  int n_experts, k;
  DType wdtype;
  int n_tokens;
  bool decode = false;  // few rows per expert: the skinny kernels take it (skinny_moe_experts)
};

void run_experts_case(const ExpertsCase& c, FastRng& frng, Rng& rng) {
  StackedWeight gate(c.n_experts, c.inter, c.hidden, c.wdtype, frng), up(c.n_experts, c.inter, c.hidden, c.wdtype, frng),
      down(c.n_experts, c.hidden, c.inter, c.wdtype, frng);
  DeviceStacked d_gate(gate), d_up(up), d_down(down);
  // The CPU's experts: each a view of its slice of the host stack (as CpuBackend::upload_experts
  // keeps them), `stacked` left empty.
  ExpertMlpWeights experts;
  for (int e = 0; e < c.n_experts; ++e) {
    experts.gate.experts.push_back(gate.expert(e));
    experts.up.experts.push_back(up.expert(e));
    experts.down.experts.push_back(down.expert(e));
  }
  const int n = c.n_tokens, k = c.k;
  const auto ids = skewed_ids(n, k, c.n_experts, rng);
  std::vector<float> weights(ids.size());
  for (auto& w : weights) w = 0.25f + std::fabs(rng.normal(1)[0]);

  // f32 activations take the tiled kernels only; bf16 each path (the skinny kernels where the
  // rows per expert are few enough).
  const std::pair<DType, SkinnyKernel> paths[] = {{DType::f32, SkinnyKernel::none},
                                                   {DType::bf16, SkinnyKernel::none},
                                                   {DType::bf16, SkinnyKernel::cuda_cores},
                                                   {DType::bf16, SkinnyKernel::tensor_cores},
                                                   {DType::bf16, SkinnyKernel::tensor_cores_always}};
  static constexpr const char* kPathName[] = {" tiled", " skinny fma", " skinny mma", " skinny mma-all"};
  for (const auto& [act, skinny] : paths) {
    // mma-all differs from mma only at one row an expert: decode cases.
    if (skinny == SkinnyKernel::tensor_cores_always && !c.decode) continue;
    // A skinny path that does not take this case would run the tiled kernel again: skip it (the
    // CPU oracle at V3's widths is what makes this test long).
    const int64_t rows = int64_t(n) * k;
    if (skinny != SkinnyKernel::none && rows > moe_skinny_rows_per_expert(skinny) * c.n_experts) {
      EXPECT_FALSE(c.decode) << c.name << ": a decode case the skinny kernels do not take";
      continue;
    }
    const std::string what = std::string("experts ") + c.name + " w " + dname(c.wdtype) + " act " + dname(act) +
                             " n " + std::to_string(n) + kPathName[int(skinny)];
    const auto x = round_to(rng.normal(size_t(n) * size_t(c.hidden)), act);
    const auto shared = round_to(rng.normal(size_t(n) * size_t(c.hidden)), act);
    // The oracle: routed experts, then the shared expert's output added (deepseek_model.cpp).
    std::vector<float> x_host = x, ids_f(ids.size()), ref(size_t(n) * size_t(c.hidden)), shared_host = shared;
    std::vector<int32_t> ids_host = ids;
    std::vector<float> w_host = weights;
    // The CPU's four MoE ops after routing (its dispatch takes the counts routing would give).
    const int64_t m = int64_t(n) * k;
    std::vector<int32_t> counts_host(size_t(c.n_experts), 0), offsets_host(size_t(c.n_experts) + 1),
        row_map_host(static_cast<size_t>(m));
    for (int32_t e : ids) ++counts_host[size_t(e)];
    std::vector<float> xs_host(size_t(m * c.hidden)), gate_host(size_t(m * c.inter)), up_host(size_t(m * c.inter)),
        ys_host(size_t(m * c.hidden));
    cpu::CpuBackend cpu;
    const Tensor ids_t = Tensor::matrix(ids_host.data(), DType::i32, n, k);
    const Tensor map_t = Tensor::matrix(row_map_host.data(), DType::i32, n, k);
    const Tensor offsets_t = Tensor::matrix(offsets_host.data(), DType::i32, 1, c.n_experts + 1);
    const Tensor xs_t = Tensor::matrix(xs_host.data(), DType::f32, m, c.hidden);
    const Tensor ys_t = Tensor::matrix(ys_host.data(), DType::f32, m, c.hidden);
    cpu.moe_dispatch(Tensor::matrix(x_host.data(), DType::f32, n, c.hidden), ids_t,
                     Tensor::matrix(counts_host.data(), DType::i32, 1, c.n_experts), xs_t, offsets_t, map_t);
    cpu.moe_grouped_mlp(xs_t, offsets_t, experts, Tensor::matrix(gate_host.data(), DType::f32, m, c.inter),
                        Tensor::matrix(up_host.data(), DType::f32, m, c.inter), ys_t);
    cpu.moe_combine(ys_t, map_t, ids_t, Tensor::matrix(w_host.data(), DType::f32, n, k),
                    Tensor::matrix(shared_host.data(), DType::f32, n, c.hidden),
                    Tensor::matrix(ref.data(), DType::f32, n, c.hidden));

    DeviceMem d_ids = upload_raw(ids), d_w = upload_raw(weights), d_x = upload(x, act), d_shared = upload(shared, act);
    DeviceMem d_off(size_t(c.n_experts + 1) * 4), d_map(size_t(m) * 4), d_xs(size_t(m * c.hidden) * dtype_size(act)),
        d_h(size_t(m * c.inter) * dtype_size(act)), d_ys(size_t(m * c.hidden) * dtype_size(act)),
        d_out(ref.size() * dtype_size(act));
    for (DeviceMem* d : {&d_off, &d_map, &d_xs, &d_h, &d_ys, &d_out}) d->poison();

    MoeDispatchParams dp;
    dp.n_tokens = n;
    dp.top_k = k;
    dp.n_experts = c.n_experts;
    dp.expert_ids = d_ids.as<int32_t>();
    dp.expert_offsets = d_off.as<int32_t>();
    dp.row_map = d_map.as<int32_t>();
    dp.act_dtype = act;
    dp.hidden = c.hidden;
    dp.x = d_x.get();
    dp.x_ld = c.hidden;
    dp.x_sorted = d_xs.get();
    dp.x_sorted_ld = c.hidden;
    moe_dispatch(dp, nullptr);
    MoeExpertsParams ep;
    ep.act_dtype = act;
    ep.n_experts = c.n_experts;
    ep.hidden = c.hidden;
    ep.inter = c.inter;
    ep.n_rows = m;
    ep.expert_offsets = d_off.as<int32_t>();
    ep.x_sorted = d_xs.get();
    ep.gate = d_gate.g;
    ep.up = d_up.g;
    ep.down = d_down.g;
    ep.h = d_h.get();
    ep.y_sorted = d_ys.get();
    ep.skinny = skinny;
    // The skinny kernels take what has few rows per expert (the others were skipped above).
    if (act == DType::bf16) {
      EXPECT_EQ(skinny_moe_experts(ep), skinny != SkinnyKernel::none) << what;
    }
    moe_experts(ep, nullptr);
    MoeCombineParams cp;
    cp.act_dtype = act;
    cp.n_tokens = n;
    cp.top_k = k;
    cp.hidden = c.hidden;
    cp.expert_ids = d_ids.as<int32_t>();
    cp.expert_weights = d_w.as<float>();
    cp.row_map = d_map.as<int32_t>();
    cp.y_sorted = d_ys.get();
    cp.shared_out = d_shared.get();
    cp.shared_ld = c.hidden;
    cp.out = d_out.get();
    cp.out_ld = c.hidden;
    moe_combine(cp, nullptr);
    const double tol = act == DType::bf16 ? 4 * kBf16U : 1e-5;
    expect_close(download(d_out, act, ref.size()), ref, tol, tol, what);
  }
}

TEST(CudaMoe, GroupedExpertsAndCombineMatchCpu) {
  require_gpu();
  Rng rng;
  SCOPED_TRACE(rng.trace());
  FastRng frng{rng.seed | 1};
  const ExpertsCase cases[] = {
      {"tiny-v2-lite", 192, 64, 8, 3, DType::bf16, 37},
      {"tiny-v3-odd (partial FP8 blocks)", 200, 72, 9, 3, DType::f8_e4m3, 70},
      {"tiny-v3-fp8", 256, 96, 16, 4, DType::f8_e4m3, 150},
      {"V2-Lite (2048 x 1408, 64 experts, top 6)", 2048, 1408, 64, 6, DType::bf16, 96},
      // V3's widths and top-8 with 24 of its 256 experts (all 256 would be 11 GB of weights).
      {"V3 widths (7168 x 2048, 24 experts, top 8)", 7168, 2048, 24, 8, DType::f8_e4m3, 48},
      // Decode steps: one token, a batch of 64 on V2-Lite's widths, V3's FP8 widths at 4 and 16.
      {"tiny-v2-lite decode", 192, 64, 8, 3, DType::bf16, 1, true},
      {"V2-Lite decode (batch 1)", 2048, 1408, 64, 6, DType::bf16, 1, true},
      {"V2-Lite decode (batch 64)", 2048, 1408, 64, 6, DType::bf16, 64, true},
      {"tiny-v3-fp8 decode", 256, 96, 16, 4, DType::f8_e4m3, 3, true},
      {"V3 widths decode (FP8, batch 4)", 7168, 2048, 24, 8, DType::f8_e4m3, 4, true},
      // 5.3 rows an expert: the tensor-core kernel (8 warps a gate/up tile of 24 experts' 128, one
      // warp a down tile).
      {"V3 widths decode (FP8, batch 16)", 7168, 2048, 24, 8, DType::f8_e4m3, 16, true},
  };
  for (const auto& c : cases) run_experts_case(c, frng, rng);
}

}  // namespace
}  // namespace dsi::cuda::ktest
