// The cuBLASLt GEMMs against a double-precision reference computed from exactly the values the
// device holds (bf16-rounded inputs; FP8 codes times their scales), on fresh random inputs and
// shapes from one token to 2048, with dims that are and are not multiples of 128.
//
// Tolerances, relative to S_ij = sum_p |x_ip| |w_jp| (the sum's condition) with u = 2^-24:
//  - f32 x f32 (strict) and bf16 x bf16 -> f32: f32 accumulation of exact products. Any
//    summation order is within (k + 2) u S (Higham 3.1); random-signed sums do far better, so
//    also rms(|err| / (u S)) <= 8. TF32 (10-bit mantissa) or bf16 accumulation is ~2^13 u S.
//  - bf16 output: one more rounding, |err| <= 2^-8 |ref| + (k + 2) u S.
//  - FP8: Hopper's FP8 tensor cores keep about 14 bits while accumulating inside one 128-deep
//    slice (DeepSeek-V3 report, 3.3.2); cuBLASLt's block scaling adds each slice into f32. So
//    rms(|err| / S) <= 2^-10 and max(|err| / S) <= 2^-7 (a wrong scale layout gives ~1).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "backend/cuda/fp8.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/grouped_gemv.h"
#include "backend/cuda/stream.h"
#include "core/error.h"
#include "cuda_test_util.h"

namespace dsi::cuda::test {
namespace {

constexpr size_t kWorkspace = 32 << 20;

struct GemmCheck {
  double max_ratio = 0;   // max |err| / bound
  double rms_cond = 0;    // rms(|err| / (unit * S))
  double normalized = 0;  // ||err|| / ||ref||
  int64_t n_bad = 0;
};

// ref and S in double from dense host operands x [n, k], w [m, k] (the values on the device).
void reference(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int64_t m, int64_t k,
               std::vector<double>& ref, std::vector<double>& cond) {
  ref.assign(size_t(n * m), 0.0);
  cond.assign(size_t(n * m), 0.0);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double acc = 0, s = 0;
      const float* xi = x.data() + i * k;
      const float* wj = w.data() + j * k;
      for (int64_t p = 0; p < k; ++p) {
        const double t = double(xi[p]) * double(wj[p]);
        acc += t;
        s += std::fabs(t);
      }
      ref[size_t(i * m + j)] = acc;
      cond[size_t(i * m + j)] = s;
    }
}

// |err| <= rel * |ref| + abs_unit * S for every element; rms of |err| / (rms_unit * S).
GemmCheck check(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& cond,
                double rel, double abs_unit, double rms_unit) {
  GemmCheck c;
  double ss = 0, num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++c.n_bad;
      continue;
    }
    const double e = std::fabs(double(got[i]) - ref[i]);
    const double bound = rel * std::fabs(ref[i]) + abs_unit * cond[i];
    c.max_ratio = std::max(c.max_ratio, bound > 0 ? e / bound : (e > 0 ? INFINITY : 0));
    const double r = cond[i] > 0 ? e / (rms_unit * cond[i]) : 0;
    ss += r * r;
    num += e * e;
    den += ref[i] * ref[i];
  }
  c.rms_cond = std::sqrt(ss / double(ref.size()));
  c.normalized = den > 0 ? std::sqrt(num / den) : 0;
  return c;
}

std::string describe(const GemmCheck& c) {
  return "max err/bound " + std::to_string(c.max_ratio) + ", rms err/(unit S) " + std::to_string(c.rms_cond) +
         ", normalised " + std::to_string(c.normalized) + ", non-finite " + std::to_string(c.n_bad);
}

struct GemmShape {
  int64_t n, out, in;
};

std::string shape_name(const GemmShape& s) {
  return "n " + std::to_string(s.n) + " out " + std::to_string(s.out) + " in " + std::to_string(s.in);
}

class CudaGemm : public ::testing::Test {
 public:
  void SetUp() override {
    require_gpu();
    workspace = std::make_unique<DeviceBuffer>(kWorkspace);
    ctx = std::make_unique<GemmContext>(workspace->data(), kWorkspace);
  }
  std::unique_ptr<DeviceBuffer> workspace;
  std::unique_ptr<GemmContext> ctx;
  Stream s;

  // bf16 or f32 operands; strided views of x (row stride in + pad) where pad > 0; with
  // transposed, W^T stored [in, out] with row stride out + w_pad (attention's P V over cache rows).
  void run_dense(DType in_t, DType out_t, GemmShape sh, int64_t pad = 0, bool transposed = false, int64_t w_pad = 0) {
    Rng rng;
    SCOPED_TRACE(rng.trace() + " " + std::string(dtype_name(in_t)) + " -> " + std::string(dtype_name(out_t)) + " " +
                 shape_name(sh) + " pad " + std::to_string(pad) + (transposed ? " W^T" : ""));
    auto x = round_to(rng.normal(size_t(sh.n * sh.in)), in_t);
    auto w = round_to(rng.normal(size_t(sh.out * sh.in), 0.05f), in_t);
    std::vector<double> ref, cond;
    reference(x, w, sh.n, sh.out, sh.in, ref, cond);
    auto dx = upload(x, in_t, sh.n, sh.in, sh.in + pad);
    std::vector<float> wt(w.size());
    for (int64_t o = 0; o < sh.out; ++o)
      for (int64_t i = 0; i < sh.in; ++i) wt[size_t(i * sh.out + o)] = w[size_t(o * sh.in + i)];
    auto dw = transposed ? upload(wt, in_t, sh.in, sh.out, sh.out + w_pad) : upload(w, in_t, sh.out, sh.in);
    DeviceTensor dy(out_t, sh.n, sh.out);
    dy.poison();
    GemmParams gp{dx.t, nullptr, dw.t, nullptr, dy.t};
    gp.w_transposed = transposed;
    gemm(*ctx, gp, s.get());
    auto got = download(dy.t);
    const double k = double(sh.in);
    const GemmCheck c = out_t == DType::bf16 ? check(got, ref, cond, kBf16Eps, (k + 2) * kF32Eps, kF32Eps)
                                             : check(got, ref, cond, 0.0, (k + 2) * kF32Eps, kF32Eps);
    std::printf("  gemm %-5s -> %-5s %-28s %s\n", std::string(dtype_name(in_t)).c_str(),
                std::string(dtype_name(out_t)).c_str(), shape_name(sh).c_str(), describe(c).c_str());
    EXPECT_EQ(c.n_bad, 0) << describe(c);
    EXPECT_LE(c.max_ratio, 1.0) << describe(c);
    if (out_t == DType::f32) {
      EXPECT_LE(c.rms_cond, 8.0) << describe(c);
    }
  }

  // FP8: x quantised on the device per token and 128 columns, W with random block scales.
  GemmCheck run_fp8(DType out_t, GemmShape sh, const Fp8ScaleOrder& order, bool expect = true) {
    Rng rng;
    SCOPED_TRACE(rng.trace() + " fp8 -> " + std::string(dtype_name(out_t)) + " " + shape_name(sh));
    auto x = round_to(rng.normal(size_t(sh.n * sh.in)), DType::bf16);
    auto wq = round_to(rng.normal(size_t(sh.out * sh.in), 60.0f), DType::f8_e4m3);
    const int64_t sr = (sh.out + 127) / 128, sc = (sh.in + 127) / 128;
    auto wscale = rng.uniform(size_t(sr * sc), 1e-4f, 1e-3f);
    // Quantise x on the device, read back codes and scales: the reference multiplies exactly those.
    auto dx = upload(x, DType::bf16, sh.n, sh.in);
    DeviceTensor dq(DType::f8_e4m3, sh.n, sh.in);
    dq.poison();
    const Fp8ActScaleLayout lay = fp8_act_scale_layout(sh.n, sh.in, order);
    DeviceBuffer dxs(size_t(lay.n_floats) * 4);
    DSI_CUDA_CHECK(cudaMemset(dxs.data(), 0xff, dxs.size()));
    quantize_fp8({dx.t, dq.t, dxs.as<float>(), lay.token_stride, lay.group_stride}, s.get());
    auto xq = download(dq.t);
    std::vector<float> xs(size_t(lay.n_floats));
    DSI_CUDA_CHECK(cudaMemcpy(xs.data(), dxs.data(), dxs.size(), cudaMemcpyDeviceToHost));
    std::vector<float> xd(xq.size()), wd(wq.size());
    for (int64_t t = 0; t < sh.n; ++t)
      for (int64_t j = 0; j < sh.in; ++j)
        xd[size_t(t * sh.in + j)] = xq[size_t(t * sh.in + j)] * xs[size_t(t * lay.token_stride + j / 128 * lay.group_stride)];
    for (int64_t r = 0; r < sh.out; ++r)
      for (int64_t j = 0; j < sh.in; ++j)
        wd[size_t(r * sh.in + j)] = wq[size_t(r * sh.in + j)] * wscale[size_t(r / 128 * sc + j / 128)];
    std::vector<double> ref, cond;
    reference(xd, wd, sh.n, sh.out, sh.in, ref, cond);

    auto dw = upload(wq, DType::f8_e4m3, sh.out, sh.in);
    Weight host_w{Tensor::matrix(nullptr, DType::f8_e4m3, sh.out, sh.in), Tensor::matrix(wscale.data(), DType::f32, sr, sc)};
    auto ws = fp8_weight_scales_for_gemm(host_w, order);
    DeviceBuffer dws(ws.size() * 4);
    DSI_CUDA_CHECK(cudaMemcpy(dws.data(), ws.data(), ws.size() * 4, cudaMemcpyHostToDevice));
    DeviceTensor dy(out_t, sh.n, sh.out);
    dy.poison();
    GemmContext fp8_ctx(workspace->data(), kWorkspace, order);
    gemm(fp8_ctx, {dq.t, dxs.as<float>(), dw.t, dws.as<float>(), dy.t}, s.get());
    auto got = download(dy.t);
    const double rel = out_t == DType::bf16 ? kBf16Eps : 0.0;
    GemmCheck c = check(got, ref, cond, rel, 1.0 / 128, 1.0 / 1024);
    if (expect) {
      std::printf("  gemm fp8   -> %-5s %-28s %s\n", std::string(dtype_name(out_t)).c_str(), shape_name(sh).c_str(),
                  describe(c).c_str());
      EXPECT_EQ(c.n_bad, 0) << describe(c);
      EXPECT_LE(c.max_ratio, 1.0) << describe(c);
      EXPECT_LE(c.rms_cond, 1.0) << describe(c);
    }
    return c;
  }
};

const GemmShape kDenseShapes[] = {{1, 4096, 7168}, {7, 1536, 7168}, {64, 2048, 512},
                                  {2048, 1024, 2048}, {7, 100, 300}, {64, 129, 257}};

TEST_F(CudaGemm, Bf16ToF32) {
  for (auto sh : kDenseShapes) run_dense(DType::bf16, DType::f32, sh);
}

TEST_F(CudaGemm, Bf16ToBf16) {
  for (auto sh : kDenseShapes) run_dense(DType::bf16, DType::bf16, sh);
}

TEST_F(CudaGemm, F32StrictIsNotTf32) {
  for (auto sh : {GemmShape{1, 1000, 777}, GemmShape{7, 512, 7168}, GemmShape{64, 96, 200}, GemmShape{2048, 512, 1024}})
    run_dense(DType::f32, DType::f32, sh);
}

// W^T stored row-major: MLA prefill's P V with the latent rows of the cache (512 of 576 columns).
TEST_F(CudaGemm, TransposedWeight) {
  run_dense(DType::bf16, DType::bf16, {2048, 512, 2048}, 0, true, 64);
  run_dense(DType::bf16, DType::f32, {64, 512, 300}, 4, true, 64);
  run_dense(DType::f32, DType::f32, {7, 100, 300}, 0, true, 0);
}

TEST_F(CudaGemm, StridedActivationRows) {
  run_dense(DType::bf16, DType::f32, {64, 512, 1024}, 64);
  run_dense(DType::f32, DType::f32, {7, 256, 512}, 3);  // rows only 4-byte aligned
}

// The skinny decode kernels (grouped_gemv.h, CUDA-core and tensor-core) as a dense linear
// layer, one group: bf16 weights (the CUDA backend's dense matrices) and FP8 with 128x128 block
// scales (the FP8 decode form), f32 accumulation of exact products in a fixed order, so the same
// bounds as cuBLASLt's bf16: |err| <= (k + 2) u S (+ 2^-8 |ref| for a bf16 output) and
// rms(|err| / (u S)) <= 8.
void run_skinny(Stream& s, bool tensor_cores, DType w_t, DType out_t, GemmShape sh, int64_t pad) {
  Rng rng;
  SCOPED_TRACE(rng.trace() + (tensor_cores ? " skinny mma " : " skinny fma ") + std::string(dtype_name(w_t)) +
               " -> " + std::string(dtype_name(out_t)) + " " + shape_name(sh) + " pad " + std::to_string(pad));
  const auto x = round_to(rng.normal(size_t(sh.n * sh.in)), DType::bf16);
  const bool fp8 = w_t == DType::f8_e4m3;
  const auto wq = round_to(rng.normal(size_t(sh.out * sh.in), fp8 ? 60.0f : 0.05f), w_t);
  const int64_t sr = (sh.out + 127) / 128, sc = (sh.in + 127) / 128;
  const auto wscale = rng.uniform(size_t(sr * sc), 1e-4f, 1e-3f);
  std::vector<float> wd(wq.size());
  for (int64_t r = 0; r < sh.out; ++r)
    for (int64_t j = 0; j < sh.in; ++j)
      wd[size_t(r * sh.in + j)] = wq[size_t(r * sh.in + j)] * (fp8 ? wscale[size_t(r / 128 * sc + j / 128)] : 1.0f);
  std::vector<double> ref, cond;
  reference(x, wd, sh.n, sh.out, sh.in, ref, cond);
  auto dx = upload(x, DType::bf16, sh.n, sh.in, sh.in + pad);
  auto dw = upload(wq, w_t, sh.out, sh.in);
  DeviceBuffer dws(wscale.size() * 4);
  DSI_CUDA_CHECK(cudaMemcpy(dws.data(), wscale.data(), dws.size(), cudaMemcpyHostToDevice));
  DeviceTensor dy(out_t, sh.n, sh.out);
  dy.poison();
  GroupedGemvParams q;
  q.gemm.act_dtype = DType::bf16;
  q.gemm.n_groups = 1;
  q.gemm.n_rows = sh.n;
  q.gemm.n_cols = sh.out;
  q.gemm.depth = sh.in;
  q.gemm.a = dx.t.data;
  q.gemm.a_ld = dx.t.row_stride;
  q.gemm.y = dy.t.data;
  q.gemm.y_ld = sh.out;
  q.gemm.w.data = dw.t.data;
  q.gemm.w.dtype = w_t;
  q.gemm.w.ld = sh.in;
  if (fp8) {
    q.gemm.w.scale = dws.as<float>();
    q.gemm.w.scale_ld = sc;
  }
  q.y_dtype = out_t;
  // The tensor-core request takes the MMA kernel at every row count (DSINFER_CUDA_SKINNY=mma-all),
  // not only past kFmaRowsPerGroup, so both kernels meet each shape.
  pick_skinny_kernel(q, tensor_cores ? SkinnyKernel::tensor_cores_always : SkinnyKernel::cuda_cores);
  ASSERT_TRUE(grouped_gemv_supported(q));
  grouped_gemv(q, s.get());
  const auto got = download(dy.t);
  const double k = double(sh.in);
  const GemmCheck c = check(got, ref, cond, out_t == DType::bf16 ? kBf16Eps : 0.0, (k + 2) * kF32Eps, kF32Eps);
  std::printf("  skinny %s %-7s -> %-5s %-28s %s\n", tensor_cores ? "mma" : "fma", std::string(dtype_name(w_t)).c_str(),
              std::string(dtype_name(out_t)).c_str(), shape_name(sh).c_str(), describe(c).c_str());
  EXPECT_EQ(c.n_bad, 0) << describe(c);
  EXPECT_LE(c.max_ratio, 1.0) << describe(c);
  if (out_t == DType::f32) {
    EXPECT_LE(c.rms_cond, 8.0) << describe(c);
  }
}

// Decode shapes of V2-Lite and V3 (kv_a 576, router 64, lm_head-like widths), 1 to 16 rows (the
// backend's limit) and up to 40 (the kernels' passes: the CUDA-core one takes 8 rows a pass,
// the tensor-core one 8, 16 or 32), a strided activation, a width that leaves the last CTA
// partly empty, and a depth of no whole 64-byte chunks (the tensor-core request falls back).
// The width 65536 + 40 (4,099 tiles of 16 columns) gives the tensor-core kernel one warp a tile
// (the last CTA part empty); the others split a tile's depth over 8 warps.
TEST_F(CudaGemm, SkinnyMatchesReference) {
  const GemmShape shapes[] = {{1, 576, 2048},   {1, 64, 2048},        {3, 4096, 7168},  {8, 2048, 1408},
                              {16, 3072, 2048}, {5, 1030, 512},       {1, 129280 / 8, 2048}, {40, 1030, 512},
                              {3, 256, 200},    {4, 65536 + 40, 512}};
  for (bool tc : {false, true}) {
    for (auto sh : shapes)
      for (DType out_t : {DType::f32, DType::bf16}) run_skinny(s, tc, DType::bf16, out_t, sh, 0);
    run_skinny(s, tc, DType::bf16, DType::f32, {4, 1536, 1024}, 24);
    for (auto sh : {GemmShape{1, 1536, 7168}, GemmShape{6, 7168, 2048}, GemmShape{16, 576, 1536},
                    GemmShape{24, 2048, 1408}, GemmShape{4, 65536, 512}})
      run_skinny(s, tc, DType::f8_e4m3, DType::bf16, sh, 0);
  }
}

TEST_F(CudaGemm, SkinnyRefusesWhatItCannotRead) {
  GroupedGemvParams q;
  q.gemm.act_dtype = DType::bf16;
  q.gemm.n_groups = 1;
  q.gemm.n_rows = 1;
  q.gemm.n_cols = 8;
  q.gemm.depth = 100;  // not whole 16-byte chunks
  q.gemm.a = workspace->data();
  q.gemm.a_ld = 104;
  q.gemm.w.data = workspace->data();
  q.gemm.w.ld = 104;
  EXPECT_FALSE(grouped_gemv_supported(q));
  q.gemm.depth = 96;
  EXPECT_TRUE(grouped_gemv_supported(q));
  q.gemm.act_dtype = DType::f32;  // strict f32 mode stays on cuBLASLt
  EXPECT_FALSE(grouped_gemv_supported(q));
  q.gemm.act_dtype = DType::bf16;
  q.gemm.w.dtype = DType::f8_e4m3;  // FP8 without its scales
  EXPECT_FALSE(grouped_gemv_supported(q));
  EXPECT_THROW(grouped_gemv(q, s.get()), Error);
}

// Token counts cuBLASLt 13.1 takes for block-scaled FP8 on sm_90: it refused n = 1, 5, 7 and 33
// (every layout, device run of 2026-12-02) and took 64, 128 and 2048, so the FP8 kind is a
// prefill GEMM (gemm.h); decode needs our own kernel (the speed issue).
const GemmShape kFp8Shapes[] = {{64, 2048, 512}, {128, 512, 1024}, {2048, 1024, 2048}, {64, 1536, 7168}};

// Every shape is tried (and reported) even when one fails, so one run shows which shapes
// cuBLASLt takes.
void run_fp8_shapes(CudaGemm& t, DType out_t);

TEST_F(CudaGemm, Fp8BlockScaledToF32) { run_fp8_shapes(*this, DType::f32); }

TEST_F(CudaGemm, Fp8BlockScaledToBf16) { run_fp8_shapes(*this, DType::bf16); }

bool same_order(const Fp8ScaleOrder& a, const Fp8ScaleOrder& b) {
  return a.weight_per_row == b.weight_per_row && a.weight_in_fastest == b.weight_in_fastest &&
         a.weight_pad == b.weight_pad && a.act_token_fastest == b.act_token_fastest && a.act_pad == b.act_pad;
}

// The layouts the probe below found right (tests run in the order they are defined).
std::vector<Fp8ScaleOrder> g_right_orders;

std::string order_name(const Fp8ScaleOrder& o) {
  return std::string(o.weight_per_row ? "w per-row " : "w 128x128 ") + (o.weight_in_fastest ? "in-fastest" : "out-fastest") +
         " pad " + std::to_string(o.weight_pad) + ", act " + (o.act_token_fastest ? "token-fastest" : "group-fastest") +
         " pad " + std::to_string(o.act_pad);
}

void run_fp8_shapes(CudaGemm& t, DType out_t) {
  for (auto sh : kFp8Shapes) {
    try {
      t.run_fp8(out_t, sh, kFp8ScaleOrder);
    } catch (const Error& e) {
      ADD_FAILURE() << shape_name(sh) << ": " << e.what();
    }
  }
}

// Every conceivable scale layout, each on a shape where paddings matter (3 blocks each way)
// and ones where they do not: prints which ones cuBLASLt accepts and computes right
// with, so a failure above says what cuBLASLt actually reads; the production one must be right.
TEST_F(CudaGemm, Fp8ScaleLayoutIsTheOneCublasReads) {
  std::printf("  fp8 scale layouts: rms err/S at [n x out x in] = [128 x 256 x 512], [64 x 256 x 512], [64 x 384 x 384] (right: < 1e-3)\n");
  bool production_right = false;
  int n_right = 0;
  for (bool per_row : {false, true})
    for (bool w_inf : {true, false})
      for (int w_pad : {1, 4})
        for (bool act_tf : {true, false})
          for (int act_pad : {1, 4}) {
            const Fp8ScaleOrder o{per_row, w_inf, w_pad, act_tf, act_pad};
            // Each shape on its own: FP8 GEMMs have dimension rules (multiples of 8 or 16 tokens).
            std::string result;
            bool right = true;
            for (GemmShape sh : {GemmShape{128, 256, 512}, GemmShape{64, 256, 512}, GemmShape{64, 384, 384}}) {
              try {
                const double e = run_fp8(DType::f32, sh, o, false).rms_cond / 1024;
                char buf[32];
                std::snprintf(buf, sizeof buf, " %.3g", e);
                result += buf;
                right = right && e < 1e-3;
              } catch (const Error& e) {
                const std::string what = e.what();
                result += " refused(" + what.substr(what.rfind(' ') + 1) + ")";
                right = false;
              }
            }
            std::printf("    %-62s %s%s\n", order_name(o).c_str(), result.c_str(), right ? "  RIGHT" : "");
            n_right += right;
            if (right) g_right_orders.push_back(o);
            if (same_order(o, kFp8ScaleOrder)) production_right = right;
          }
  std::printf("  %d layouts right; production (%s) %s\n", n_right, order_name(kFp8ScaleOrder).c_str(),
              production_right ? "right" : "WRONG");
  EXPECT_TRUE(production_right);
}

// The other layouts the probe found right, on every shape of the tests above (printed, for the
// record: only the production layout is asserted).
TEST_F(CudaGemm, Fp8AlternativeLayoutsOnAllShapes) {
  for (const Fp8ScaleOrder& o : g_right_orders) {
    if (same_order(o, kFp8ScaleOrder)) continue;
    std::printf("  alternative %s:\n", order_name(o).c_str());
    for (auto sh : kFp8Shapes)
      for (DType out_t : {DType::f32, DType::bf16}) {
        const GemmCheck c = run_fp8(out_t, sh, o, false);
        const bool ok = c.n_bad == 0 && c.max_ratio <= 1.0 && c.rms_cond <= 1.0;
        std::printf("    alt %-5s %-28s %s %s\n", std::string(dtype_name(out_t)).c_str(), shape_name(sh).c_str(),
                    describe(c).c_str(), ok ? "ok" : "OUT OF BOUNDS");
      }
  }
}

// FP8 weights whose dims are not multiples of 128 take the bf16 path: widened at upload.
TEST_F(CudaGemm, Fp8WeightOffTheBlockGridIsWidenedToBf16) {
  const GemmShape sh{7, 300, 200};
  EXPECT_FALSE(fp8_gemm_supported(sh.out, sh.in));
  Rng rng;
  SCOPED_TRACE(rng.trace());
  auto x = round_to(rng.normal(size_t(sh.n * sh.in)), DType::bf16);
  auto wq = round_to(rng.normal(size_t(sh.out * sh.in), 60.0f), DType::f8_e4m3);
  const int64_t sr = 3, sc = 2;
  auto wscale = rng.uniform(size_t(sr * sc), 1e-3f, 1e-2f);
  auto dwq = upload(wq, DType::f8_e4m3, sh.out, sh.in);
  auto dws = upload(wscale, DType::f32, sr, sc);
  DeviceTensor dwb(DType::bf16, sh.out, sh.in);
  dwb.poison();
  dequantize_fp8({Weight{dwq.t, dws.t}, dwb.t}, s.get());
  std::vector<float> wd(wq.size());
  for (int64_t r = 0; r < sh.out; ++r)
    for (int64_t j = 0; j < sh.in; ++j)
      wd[size_t(r * sh.in + j)] = wq[size_t(r * sh.in + j)] * wscale[size_t(r / 128 * sc + j / 128)];
  std::vector<double> ref, cond;
  reference(x, wd, sh.n, sh.out, sh.in, ref, cond);
  auto dx = upload(x, DType::bf16, sh.n, sh.in);
  DeviceTensor dy(DType::f32, sh.n, sh.out);
  dy.poison();
  gemm(*ctx, {dx.t, nullptr, dwb.t, nullptr, dy.t}, s.get());
  // The widened weight is rounded to bf16 once: |err| <= 2^-8 S + f32 accumulation.
  GemmCheck c = check(download(dy.t), ref, cond, 0.0, kBf16Eps + double(sh.in + 2) * kF32Eps, kF32Eps);
  EXPECT_EQ(c.n_bad, 0) << describe(c);
  EXPECT_LE(c.max_ratio, 1.0) << describe(c);
  // And the FP8 GEMM itself refuses the shape, naming it.
  DeviceTensor dq(DType::f8_e4m3, sh.n, sh.in);
  try {
    gemm(*ctx, {dq.t, dws.t.row<float>(0), dwq.t, dws.t.row<float>(0), dy.t}, s.get());
    ADD_FAILURE() << "an FP8 [300, 200] weight was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[300, 200]"), std::string::npos) << e.what();
  }
}

TEST_F(CudaGemm, PlansAreCachedPerShape) {
  auto dx = upload(std::vector<float>(64 * 512, 1.0f), DType::bf16, 64, 512);
  auto dw = upload(std::vector<float>(256 * 512, 1.0f), DType::bf16, 256, 512);
  DeviceTensor dy(DType::f32, 64, 256);
  for (int i = 0; i < 3; ++i) gemm(*ctx, {dx.t, nullptr, dw.t, nullptr, dy.t}, s.get());
  EXPECT_EQ(ctx->n_plans(), 1u);
  gemm(*ctx, {dx.t.slice_rows(0, 7), nullptr, dw.t, nullptr, dy.t.slice_rows(0, 7)}, s.get());
  EXPECT_EQ(ctx->n_plans(), 2u);
  auto y = download(dy.t);
  for (float v : y) ASSERT_EQ(v, 512.0f);
}

TEST_F(CudaGemm, BadOperandsAreRejectedByName) {
  auto dx = upload(std::vector<float>(7 * 512, 1.0f), DType::bf16, 7, 512);
  auto dw = upload(std::vector<float>(256 * 500, 1.0f), DType::bf16, 256, 500);
  DeviceTensor dy(DType::f32, 7, 256);
  try {
    gemm(*ctx, {dx.t, nullptr, dw.t, nullptr, dy.t}, s.get());
    ADD_FAILURE() << "mismatched inner dims were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x is [7, 512], expected [7, 500]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsi::cuda::test
