// cuda_gemm_bench: the cuBLASLt GEMMs (bf16 and block-scaled FP8) and a few memory-bound kernels
// on DeepSeek-V3 shapes, against ceilings measured in the same run (a device-to-device copy) and
// the datasheet-derived peaks of the issue (774 TFLOP/s bf16, 1388 FP8 dense on an H200).
// Times: CUDA events, median of --reps after --warmup launches, weights rotated over enough
// copies to exceed the L2 so small-n products read them from HBM as in decode.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/expert_gemm.h"
#include "backend/cuda/fp8.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/stream.h"
#include "core/int_math.h"

namespace {

using namespace dsi;
using namespace dsi::cuda;

constexpr double kPeakBf16 = 774e12, kPeakFp8 = 1388e12;

// Fills device memory with random valid values of the dtype (never zeros: zeros run faster
// than real data): 4 MiB of random values made once per dtype, repeated. (Drawing every value
// on the host took minutes for the FP8 weights and lost the run.)
struct RandomBlocks {
  std::vector<unsigned char> by_dtype[3];  // bf16, e4m3, f32
};

void fill_random(void* dst, size_t bytes, DType t, RandomBlocks& blocks) {
  constexpr size_t kBlock = size_t(4) << 20;
  auto& h = blocks.by_dtype[t == DType::bf16 ? 0 : t == DType::f8_e4m3 ? 1 : 2];
  if (h.empty()) {
    std::mt19937 gen(1234);
    std::normal_distribution<float> d(0.0f, 1.0f);
    h.resize(kBlock);
    const size_t es = dtype_size(t);
    for (size_t i = 0; i < kBlock / es; ++i) {
      const float f = d(gen);
      if (t == DType::bf16) {
        const uint16_t b = f32_to_bf16(f);
        std::memcpy(&h[i * 2], &b, 2);
      } else if (t == DType::f8_e4m3) {
        h[i] = f32_to_fp8_e4m3(f * 50.0f);
      } else {
        std::memcpy(&h[i * 4], &f, 4);
      }
    }
  }
  auto* p = static_cast<unsigned char*>(dst);
  const size_t first = std::min(kBlock, bytes);
  DSI_CUDA_CHECK(cudaMemcpy(p, h.data(), first, cudaMemcpyHostToDevice));
  for (size_t off = first; off < bytes; off += first)  // device-side copies of the first block
    DSI_CUDA_CHECK(cudaMemcpy(p + off, p, std::min(first, bytes - off), cudaMemcpyDeviceToDevice));
}

template <class F>
double median_ms(F&& launch, int warmup, int reps, cudaStream_t s) {
  for (int i = 0; i < warmup; ++i) launch(i);
  std::vector<float> t;
  Event a, b;
  for (int i = 0; i < reps; ++i) {
    a.record(s);
    launch(i);
    b.record(s);
    b.synchronize();
    t.push_back(b.elapsed_ms_since(a));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Shape {
  int64_t n, out, in;
  const char* what;
};

// The routed experts' products as CUTLASS grouped GEMMs (expert_gemm.h; every expert the same
// rows) against the same total work as one dense cuBLASLt product, timed here too: V2-Lite's
// prefill of 8 x 2,048 tokens (bf16, 64 experts of 1,536 rows) and the V3 slice's of 2 x 2,048
// (256 experts of 128 rows) in bf16 and FP8.
void bench_expert_gemm(GemmContext& ctx, const DeviceInfo& dev, cudaStream_t s, RandomBlocks& blocks, int warmup,
                       int reps) {
  if (!expert_gemm_built()) {
    fmt::print("\nexpert grouped GEMM: not in this build (no CUTLASS)\n");
    return;
  }
  struct Case {
    const char* what;
    int n_experts;
    int64_t rows_each, n, k;
    int n_mats;
    bool fp8;
  };
  const Case cases[] = {
      {"V2-Lite gate+up", 64, 1536, 1408, 2048, 2, false}, {"V2-Lite down", 64, 1536, 2048, 1408, 1, false},
      {"V3 gate+up", 256, 128, 2048, 7168, 2, false},      {"V3 down", 256, 128, 7168, 2048, 1, false},
      {"V3 gate+up", 256, 128, 2048, 7168, 2, true},       {"V3 down", 256, 128, 7168, 2048, 1, true},
  };
  fmt::print("\n{:<16} {:>5} {:>8} {:>6} {:>6} {:>10} {:>9} {:>11} {:>9}\n", "experts", "kind", "rows", "out", "in",
             "grouped us", "TFLOP/s", "dense us", "vs dense");
  for (const Case& c : cases) {
    const DType t = c.fp8 ? DType::f8_e4m3 : DType::bf16;
    const int64_t rows = c.n_experts * c.rows_each, kb = c.k / 128, nb = ceil_div(c.n, 128);
    std::vector<int32_t> off(size_t(c.n_experts) + 1);
    for (size_t e = 0; e < off.size(); ++e) off[e] = int32_t(int64_t(e) * c.rows_each);
    DeviceBuffer d_off(off.size() * 4), x(size_t(rows * c.k) * dtype_size(t)), xs(size_t(rows * kb) * 4);
    DSI_CUDA_CHECK(cudaMemcpy(d_off.data(), off.data(), off.size() * 4, cudaMemcpyHostToDevice));
    fill_random(x.data(), x.size(), t, blocks);
    std::vector<float> ones(size_t(std::max(rows * kb, c.n_experts * nb * kb)), 1e-3f);
    DSI_CUDA_CHECK(cudaMemcpy(xs.data(), ones.data(), xs.size(), cudaMemcpyHostToDevice));
    std::vector<DeviceBuffer> w, wsc, y;
    ExpertGemmParams p;
    p.fp8 = c.fp8;
    p.n_experts = c.n_experts;
    p.row_offsets = d_off.as<int32_t>();
    p.x = x.data();
    p.x_scale = c.fp8 ? xs.as<float>() : nullptr;
    p.n = c.n;
    p.k = c.k;
    p.n_mats = c.n_mats;
    for (int m = 0; m < c.n_mats; ++m) {
      w.emplace_back(size_t(c.n_experts * c.n * c.k) * dtype_size(t));
      fill_random(w.back().data(), w.back().size(), t, blocks);
      wsc.emplace_back(size_t(c.n_experts * nb * kb) * 4);
      DSI_CUDA_CHECK(cudaMemcpy(wsc.back().data(), ones.data(), wsc.back().size(), cudaMemcpyHostToDevice));
      y.emplace_back(size_t(rows * c.n) * 2);
      p.mats[m] = {w.back().data(), c.n * c.k, y.back().data(), c.fp8 ? wsc.back().as<float>() : nullptr, nb * kb};
    }
    DeviceBuffer ws(expert_gemm_workspace_bytes(c.fp8, c.n_experts, c.n_mats, dev.n_sms));
    const double grouped = median_ms([&](int) { expert_gemm(p, ws.data(), ws.size(), dev.n_sms, s); }, warmup, reps, s);
    // The dense equivalent: all rows against one [n_mats * n, k] matrix.
    DeviceBuffer dw(size_t(c.n_mats * c.n * c.k) * dtype_size(t)), dy(size_t(rows * c.n_mats * c.n) * 2);
    fill_random(dw.data(), dw.size(), t, blocks);
    const Fp8ActScaleLayout lay = fp8_act_scale_layout(rows, c.k, kFp8ScaleOrder);
    DeviceBuffer dxs(size_t(std::max<int64_t>(lay.n_floats, 1)) * 4), dws(size_t((c.n_mats * c.n + 4) * (kb + 4)) * 4);
    std::vector<float> more(std::max(dxs.size(), dws.size()) / 4, 1e-3f);
    DSI_CUDA_CHECK(cudaMemcpy(dxs.data(), more.data(), dxs.size(), cudaMemcpyHostToDevice));
    DSI_CUDA_CHECK(cudaMemcpy(dws.data(), more.data(), dws.size(), cudaMemcpyHostToDevice));
    GemmParams g;
    g.x = Tensor::matrix(x.data(), t, rows, c.k);
    g.w = Tensor::matrix(dw.data(), t, c.n_mats * c.n, c.k);
    g.y = Tensor::matrix(dy.data(), DType::bf16, rows, c.n_mats * c.n);
    if (c.fp8) {
      g.x_scale = dxs.as<float>();
      g.w_scale = dws.as<float>();
    }
    const double dense = median_ms([&](int) { gemm(ctx, g, s); }, warmup, reps, s);
    const double flops = 2.0 * double(rows) * double(c.n_mats * c.n) * double(c.k);
    fmt::print("{:<16} {:>5} {:>8} {:>6} {:>6} {:>10.1f} {:>9.1f} {:>11.1f} {:>8.1f}%\n", c.what, c.fp8 ? "fp8" : "bf16",
               rows, c.n_mats * c.n, c.k, grouped * 1e3, flops / (grouped * 1e-3) / 1e12, dense * 1e3,
               100.0 * dense / grouped);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cuBLASLt GEMM and kernel timings on the GPU"};
  int warmup = 3, reps = 20;
  app.add_option("--warmup", warmup, "untimed launches first");
  app.add_option("--reps", reps, "timed launches (median reported)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a log even if the run is cut short
  try {
    if (cuda_device_count() == 0) {
      fmt::print(stderr, "cuda_gemm_bench: no CUDA device\n");
      return 1;
    }
    const DeviceInfo dev = query_device(0);
    fmt::print("device: {}\n", describe(dev));
    Stream stream;
    const cudaStream_t s = stream.get();
    RandomBlocks blocks;

    // Copy ceiling: 2 GiB device to device, bytes read plus written.
    {
      const size_t bytes = size_t(2) << 30;
      DeviceBuffer a(bytes), b(bytes);
      DSI_CUDA_CHECK(cudaMemset(a.data(), 1, bytes));
      const double ms = median_ms([&](int) { DSI_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s)); }, 2, 10, s);
      fmt::print("copy ceiling: {:.0f} GB/s (read + write of 2 GiB)\n", 2.0 * double(bytes) / (ms * 1e-3) / 1e9);
    }

    const size_t ws_bytes = 32 << 20;
    DeviceBuffer workspace(ws_bytes);
    GemmContext ctx(workspace.data(), ws_bytes);

    const Shape shapes[] = {
        {1, 24576, 1536, "q_b_proj"},   {64, 24576, 1536, "q_b_proj"},   {2048, 24576, 1536, "q_b_proj"},
        {1, 7168, 16384, "o_proj"},     {64, 7168, 16384, "o_proj"},     {2048, 7168, 16384, "o_proj"},
        {1, 18432, 7168, "dense up"},   {64, 18432, 7168, "dense up"},   {2048, 18432, 7168, "dense up"},
        {1, 7168, 18432, "dense down"}, {64, 7168, 18432, "dense down"}, {2048, 7168, 18432, "dense down"},
        {8192, 8192, 8192, "square"},
        // The routed experts of the V3 slice's prefill (2 x 2048 tokens, 8 experts each) as one
        // dense product: the grouped GEMM's ceiling (bench_decode's moe_experts, same call).
        {32768, 4096, 7168, "moe gate_up"}, {32768, 7168, 2048, "moe down"},
    };
    fmt::print("\n{:<10} {:>5} {:>6} {:>6} {:>6} {:>10} {:>9} {:>7} {:>8}\n", "shape", "kind", "n", "out", "in", "time us",
               "TFLOP/s", "% peak", "GB/s");
    // fp8: the production scale layout (kFp8ScaleOrder); fp8-row: the weight's block scales
    // repeated per row (1-D scaling on both operands), for comparison.
    Fp8ScaleOrder per_row = kFp8ScaleOrder;
    per_row.weight_per_row = true;
    GemmContext ctx_row(workspace.data(), ws_bytes, per_row);
    for (const char* kind : {"bf16", "fp8", "fp8-row"}) {
      const bool fp8 = kind[0] == 'f';
      const bool row = kind[3] == '-';
      const Fp8ScaleOrder& order = row ? per_row : kFp8ScaleOrder;
      const DType wt = fp8 ? DType::f8_e4m3 : DType::bf16;
      for (const Shape& sh : shapes) {
        const size_t w_bytes = size_t(sh.out * sh.in) * dtype_size(wt);
        // Enough weight copies that their total exceeds 4 x L2 (each launch reads a cold one).
        const int n_copies = int(std::min<int64_t>(8, std::max<int64_t>(1, 4 * dev.l2_bytes / int64_t(w_bytes) + 1)));
        std::vector<DeviceBuffer> ws;
        for (int i = 0; i < n_copies; ++i) {
          ws.emplace_back(w_bytes);
          fill_random(ws.back().data(), w_bytes, wt, blocks);
        }
        DeviceBuffer x(size_t(sh.n * sh.in) * dtype_size(wt)), y(size_t(sh.n * sh.out) * 2);
        fill_random(x.data(), x.size(), wt, blocks);
        const Fp8ActScaleLayout lay = fp8_act_scale_layout(sh.n, sh.in, order);
        DeviceBuffer xs(size_t(lay.n_floats) * 4), wsc(size_t((sh.out + 4) * (sh.in / 128 + 4)) * 4);
        std::vector<float> ones(std::max(size_t(lay.n_floats), wsc.size() / 4), 1e-3f);
        DSI_CUDA_CHECK(cudaMemcpy(xs.data(), ones.data(), xs.size(), cudaMemcpyHostToDevice));
        DSI_CUDA_CHECK(cudaMemcpy(wsc.data(), ones.data(), wsc.size(), cudaMemcpyHostToDevice));
        auto params = [&](int i) {
          GemmParams p;
          p.x = Tensor::matrix(x.data(), wt, sh.n, sh.in);
          p.w = Tensor::matrix(ws[size_t(i % n_copies)].data(), wt, sh.out, sh.in);
          p.y = Tensor::matrix(y.data(), DType::bf16, sh.n, sh.out);
          if (fp8) {
            p.x_scale = xs.as<float>();
            p.w_scale = wsc.as<float>();
          }
          return p;
        };
        GemmContext& c = row ? ctx_row : ctx;
        double ms = 0;
        try {
          ms = median_ms([&](int i) { gemm(c, params(i), s); }, warmup, reps, s);
        } catch (const std::exception& e) {
          fmt::print("{:<10} {:>7} {:>6} {:>6} {:>6} {}\n", sh.what, kind, sh.n, sh.out, sh.in, e.what());
          continue;
        }
        const double flops = 2.0 * double(sh.n) * double(sh.out) * double(sh.in);
        const double bytes = double(w_bytes) + double(x.size()) + double(y.size());
        fmt::print("{:<10} {:>7} {:>6} {:>6} {:>6} {:>10.1f} {:>9.1f} {:>6.1f}% {:>8.0f}\n", sh.what, kind, sh.n, sh.out,
                   sh.in, ms * 1e3, flops / (ms * 1e-3) / 1e12, 100.0 * flops / (ms * 1e-3) / (fp8 ? kPeakFp8 : kPeakBf16),
                   bytes / (ms * 1e-3) / 1e9);
      }
    }

    bench_expert_gemm(ctx, dev, s, blocks, warmup, reps);

    // Memory-bound kernels at prefill size: one read and one write per element (GB/s).
    fmt::print("\n{:<28} {:>10} {:>8}\n", "kernel [2048, 7168]", "time us", "GB/s");
    const int64_t n = 2048, d = 7168;
    DeviceBuffer xb(size_t(n * d) * 2), yb(size_t(n * d) * 2), ob(size_t(n * d) * 2), wb(size_t(d) * 4);
    DeviceBuffer qb(size_t(n * d)), sb(size_t(n * d / 128 + 64) * 4);
    fill_random(xb.data(), xb.size(), DType::bf16, blocks);
    fill_random(yb.data(), yb.size(), DType::bf16, blocks);
    fill_random(wb.data(), wb.size(), DType::f32, blocks);
    const Tensor xt = Tensor::matrix(xb.data(), DType::bf16, n, d), yt = Tensor::matrix(yb.data(), DType::bf16, n, d),
                 ot = Tensor::matrix(ob.data(), DType::bf16, n, d), wt = Tensor::matrix(wb.data(), DType::f32, 1, d);
    auto report = [&](const char* what, double ms, double bytes) {
      fmt::print("{:<28} {:>10.1f} {:>8.0f}\n", what, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
    };
    const double e2 = double(n * d) * 2;
    report("rms_norm bf16", median_ms([&](int) { rms_norm({xt, Tensor{}, wt, 1e-6f, ot}, s); }, warmup, reps, s), 2 * e2);
    report("rms_norm + residual bf16", median_ms([&](int) { rms_norm({xt, yt, wt, 1e-6f, ot}, s); }, warmup, reps, s),
           4 * e2);
    report("silu_mul bf16", median_ms([&](int) { silu_mul({xt, yt, ot}, s); }, warmup, reps, s), 3 * e2);
    const Fp8ActScaleLayout lay = fp8_act_scale_layout(n, d);
    report("quantize_fp8 bf16 -> e4m3",
           median_ms([&](int) {
             quantize_fp8({xt, Tensor::matrix(qb.data(), DType::f8_e4m3, n, d), sb.as<float>(), lay.token_stride,
                           lay.group_stride}, s);
           }, warmup, reps, s),
           e2 + double(n * d));
    stream.synchronize();
  } catch (const std::exception& e) {
    fmt::print(stderr, "cuda_gemm_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
