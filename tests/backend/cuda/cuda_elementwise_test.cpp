// The CUDA row-wise kernels against the CPU backend (the oracle: rms_norm, silu_mul, add) or a
// plain f64 loop of MATH.md's formula (rope, embedding: their CPU ops read the step context,
// which host-side kernel tests have no use for) on fresh random inputs, f32 and bf16
// activations, vectorised and scalar paths (aligned rows, odd widths, strided views).
//
// Tolerances. f32 results: the kernels do the CPU's arithmetic (f64 sums of squares, f64
// angles, f32 products), so they may differ only where nvcc contracts a*c - b*s into one fma or
// expf differs from glibc by an ulp or two: max |err| <= 4 u max |ref| with u = 2^-24 (and the
// normalised error alike). Pure data movement (embedding, convert, add of exact sums, KV
// writes) must be exact. bf16 outputs are one rounding of the f32 result: |err| <= 2^-8 |ref|
// elementwise (bf16's unit roundoff), checked as max |err| / max |ref| <= 2^-8 plus slack for
// the f32 part.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/fp8.h"
#include "backend/cuda/mla_rope_norm_cache.h"
#include "backend/cuda/stream.h"
#include "cuda_test_util.h"

namespace dsi::cuda::test {
namespace {

constexpr double kF32Tol = 4 * kF32Eps;
constexpr double kBf16Tol = kBf16Eps * (1 + 1e-3);

double tol_for(DType out) { return out == DType::bf16 ? kBf16Tol : kF32Tol; }

void expect_close(const std::vector<float>& got, const std::vector<float>& ref, double tol, const std::string& what) {
  Errors e = compare(got, ref);
  EXPECT_EQ(e.n_bad, 0) << what << ": " << e.str();
  EXPECT_LE(e.max_rel, tol) << what << ": " << e.str();
  EXPECT_LE(e.normalized, tol) << what << ": " << e.str();
}

void expect_exact(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size());
  int64_t n_diff = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(got[i] == ref[i] || (std::isnan(got[i]) && std::isnan(ref[i])))) {
      if (n_diff++ < 3) ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", expected " << ref[i];
    }
  EXPECT_EQ(n_diff, 0) << what;
}

const char* name(DType t) { return t == DType::bf16 ? "bf16" : "f32"; }

struct Shape {
  int64_t n, d;
};
// 7168 and 512: 16-byte paths; 100: not a multiple of 8 (bf16 scalar path); 1: a single column.
const Shape kShapes[] = {{1, 7168}, {7, 512}, {64, 100}, {300, 1536}, {3, 1}};

TEST(CudaElementwise, RmsNormMatchesCpu) {
  require_gpu();
  cpu::CpuBackend cpu;
  Stream s;
  for (DType xt : {DType::f32, DType::bf16})
    for (DType ot : {DType::f32, DType::bf16})
      for (Shape sh : kShapes) {
        Rng rng;
        SCOPED_TRACE(rng.trace() + " x " + name(xt) + " out " + name(ot) + " [" + std::to_string(sh.n) + ", " +
                     std::to_string(sh.d) + "]");
        auto x = round_to(rng.normal(size_t(sh.n * sh.d), 3.0f), xt);
        auto w = rng.uniform(size_t(sh.d), 0.5f, 1.5f);
        const float eps = 1e-6f;
        std::vector<float> ref(x.size());
        cpu.rms_norm(Tensor::matrix(x.data(), DType::f32, sh.n, sh.d), Tensor::matrix(w.data(), DType::f32, 1, sh.d),
                      eps, Tensor::matrix(ref.data(), DType::f32, sh.n, sh.d));
        auto dx = upload(x, xt, sh.n, sh.d);
        auto dw = upload(w, DType::f32, 1, sh.d);
        DeviceTensor dout(ot, sh.n, sh.d);
        dout.poison();
        rms_norm({dx.t, Tensor{}, dw.t, eps, dout.t}, s.get());
        expect_close(download(dout.t), ref, tol_for(ot), "rms_norm");
      }
}

TEST(CudaElementwise, RmsNormFusedResidualEqualsAddThenNorm) {
  require_gpu();
  cpu::CpuBackend cpu;
  Stream s;
  for (DType xt : {DType::f32, DType::bf16})
    for (Shape sh : kShapes) {
      for (bool in_place : {false, true}) {
        Rng rng;
        SCOPED_TRACE(rng.trace() + " x " + name(xt) + " d " + std::to_string(sh.d) + (in_place ? " in place" : ""));
        auto x = round_to(rng.normal(size_t(sh.n * sh.d)), xt);
        auto y = round_to(rng.normal(size_t(sh.n * sh.d)), xt);
        auto w = rng.uniform(size_t(sh.d), 0.5f, 1.5f);
        // Reference: the sum rounded to x's dtype (what the kernel stores), then the CPU norm.
        std::vector<float> sum(x.size());
        for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + y[i];
        sum = round_to(sum, xt);
        std::vector<float> ref(x.size());
        cpu.rms_norm(Tensor::matrix(sum.data(), DType::f32, sh.n, sh.d),
                      Tensor::matrix(w.data(), DType::f32, 1, sh.d), 1e-6f,
                      Tensor::matrix(ref.data(), DType::f32, sh.n, sh.d));
        auto dx = upload(x, xt, sh.n, sh.d);
        auto dy = upload(y, xt, sh.n, sh.d);
        auto dw = upload(w, DType::f32, 1, sh.d);
        DeviceTensor dout(xt, sh.n, sh.d);
        dout.poison();
        const Tensor out = in_place ? dx.t : dout.t;
        rms_norm({dx.t, dy.t, dw.t, 1e-6f, out}, s.get());
        if (!in_place) expect_exact(download(dx.t), sum, "x += residual");
        expect_close(download(out), ref, tol_for(xt), "norm of x + residual");
      }
    }
}

TEST(CudaElementwise, RopeMatchesMathMd) {
  require_gpu();
  Stream s;
  // MLA's two uses: q rows of n_heads heads of (dn + dr) with the rope part last, and the
  // shared k_pe of one head at the end of the kv_a row; YaRN-like attention factor != 1.
  struct Case {
    int64_t n, cols;
    int n_heads;
    int64_t head_stride, offset;
    int n_pairs;
  };
  const Case cases[] = {{5, 16 * 192, 16, 192, 128, 32}, {64, 512 + 64, 1, 0, 512, 32}, {3, 40, 2, 20, 4, 8}};
  for (DType xt : {DType::f32, DType::bf16})
    for (const Case& c : cases) {
      Rng rng;
      SCOPED_TRACE(rng.trace() + " " + name(xt) + " heads " + std::to_string(c.n_heads));
      auto x = round_to(rng.normal(size_t(c.n * c.cols)), xt);
      std::vector<int32_t> pos(size_t(c.n));
      std::uniform_int_distribution<int32_t> pd(0, 163839);
      for (auto& p : pos) p = pd(rng.gen);
      pos[0] = 0;
      std::vector<float> inv_freq(size_t(c.n_pairs));
      for (int i = 0; i < c.n_pairs; ++i) inv_freq[size_t(i)] = float(std::pow(10000.0, -2.0 * i / (2.0 * c.n_pairs)));
      const float factor = 1.0f + 0.1f * std::log(40.0f);
      // MATH.md: x'[2i] = a (x[2i] cos t - x[2i+1] sin t), x'[2i+1] = a (x[2i] sin t + x[2i+1] cos t).
      std::vector<float> ref = x;
      for (int64_t r = 0; r < c.n; ++r)
        for (int h = 0; h < c.n_heads; ++h)
          for (int i = 0; i < c.n_pairs; ++i) {
            const double t = double(pos[size_t(r)]) * double(inv_freq[size_t(i)]);
            const size_t j = size_t(r * c.cols + h * c.head_stride + c.offset + 2 * i);
            const double a = x[j], b = x[j + 1], f = factor;
            ref[j] = float(f * (a * std::cos(t) - b * std::sin(t)));
            ref[j + 1] = float(f * (a * std::sin(t) + b * std::cos(t)));
          }
      auto dx = upload(x, xt, c.n, c.cols);
      DeviceBuffer dpos(pos.size() * 4), dfreq(inv_freq.size() * 4);
      DSI_CUDA_CHECK(cudaMemcpy(dpos.data(), pos.data(), pos.size() * 4, cudaMemcpyHostToDevice));
      DSI_CUDA_CHECK(cudaMemcpy(dfreq.data(), inv_freq.data(), inv_freq.size() * 4, cudaMemcpyHostToDevice));
      rope({dx.t, c.n_heads, c.head_stride, c.offset, dpos.as<int32_t>(), dfreq.as<float>(), c.n_pairs, factor},
           s.get());
      // The rotation of a pair mixes two values: relative to the pair's size it is f32-exact.
      expect_close(download(dx.t), ref, tol_for(xt) * 2, "rope");
    }
}

TEST(CudaElementwise, SiluMulMatchesCpuIncludingStridedHalvesOfOneProduct) {
  require_gpu();
  cpu::CpuBackend cpu;
  Stream s;
  for (DType xt : {DType::f32, DType::bf16})
    for (Shape sh : kShapes) {
      Rng rng;
      SCOPED_TRACE(rng.trace() + " " + name(xt) + " d " + std::to_string(sh.d));
      // gate | up as the two halves of one [n, 2d] GEMM output: strided views.
      auto gu = round_to(rng.normal(size_t(sh.n * 2 * sh.d), 4.0f), xt);
      std::vector<float> g(size_t(sh.n * sh.d)), u(g.size()), ref(g.size());
      for (int64_t r = 0; r < sh.n; ++r)
        for (int64_t j = 0; j < sh.d; ++j) {
          g[size_t(r * sh.d + j)] = gu[size_t(r * 2 * sh.d + j)];
          u[size_t(r * sh.d + j)] = gu[size_t(r * 2 * sh.d + sh.d + j)];
        }
      cpu.silu_mul(Tensor::matrix(g.data(), DType::f32, sh.n, sh.d), Tensor::matrix(u.data(), DType::f32, sh.n, sh.d),
                    Tensor::matrix(ref.data(), DType::f32, sh.n, sh.d));
      auto dgu = upload(gu, xt, sh.n, 2 * sh.d);
      DeviceTensor dout(xt, sh.n, sh.d);
      dout.poison();
      silu_mul({dgu.t.slice_cols(0, sh.d), dgu.t.slice_cols(sh.d, sh.d), dout.t}, s.get());
      expect_close(download(dout.t), ref, tol_for(xt), "silu_mul");
      // In place over gate.
      silu_mul({dgu.t.slice_cols(0, sh.d), dgu.t.slice_cols(sh.d, sh.d), dgu.t.slice_cols(0, sh.d)}, s.get());
      expect_close(download(dgu.t.slice_cols(0, sh.d)), ref, tol_for(xt), "silu_mul in place");
    }
}

TEST(CudaElementwise, AddAndConvertAreExact) {
  require_gpu();
  Stream s;
  for (DType xt : {DType::f32, DType::bf16})
    for (DType yt : {DType::f32, DType::bf16})
      for (Shape sh : kShapes) {
        Rng rng;
        SCOPED_TRACE(rng.trace() + " x " + name(xt) + " y " + name(yt) + " d " + std::to_string(sh.d));
        auto x = round_to(rng.normal(size_t(sh.n * sh.d)), xt);
        auto y = round_to(rng.normal(size_t(sh.n * sh.d)), yt);
        std::vector<float> ref(x.size());
        for (size_t i = 0; i < x.size(); ++i) ref[i] = x[i] + y[i];  // one f32 sum, then x's rounding
        ref = round_to(ref, xt);
        auto dx = upload(x, xt, sh.n, sh.d);
        auto dy = upload(y, yt, sh.n, sh.d);
        add({dx.t, dy.t}, s.get());
        expect_exact(download(dx.t), ref, "add");

        DeviceTensor dc(yt, sh.n, sh.d);
        dc.poison();
        convert({dx.t, dc.t}, s.get());
        expect_exact(download(dc.t), round_to(ref, yt), "convert");
      }
}

TEST(CudaElementwise, EmbeddingGathersF32Bf16AndFp8Tables) {
  require_gpu();
  Stream s;
  const int64_t vocab = 1000, hidden = 7168 / 2 + 64;  // 3648: partial 128-column scale blocks
  for (DType tt : {DType::f32, DType::bf16, DType::f8_e4m3})
    for (DType ot : {DType::f32, DType::bf16}) {
      Rng rng;
      SCOPED_TRACE(rng.trace() + " table " + std::string(dtype_name(tt)) + " out " + name(ot));
      auto table = round_to(rng.normal(size_t(vocab * hidden)), tt);
      const int64_t n_ids = 37;
      std::vector<int32_t> ids(static_cast<size_t>(n_ids));
      std::uniform_int_distribution<int32_t> id(0, int32_t(vocab - 1));
      for (auto& v : ids) v = id(rng.gen);
      ids[1] = ids[0];  // repeats are fine
      auto dt = upload(table, tt, vocab, hidden);
      // FP8 block scales, f32 [ceil(vocab / 128), ceil(hidden / 128)].
      const int64_t sr = (vocab + 127) / 128, sc = (hidden + 127) / 128;
      auto scales = rng.uniform(size_t(sr * sc), 0.001f, 0.01f);
      auto dscale = upload(scales, DType::f32, sr, sc);
      std::vector<float> ref(size_t(n_ids * hidden));
      for (int64_t i = 0; i < n_ids; ++i)
        for (int64_t j = 0; j < hidden; ++j) {
          const int64_t r = ids[size_t(i)];
          float v = table[size_t(r * hidden + j)];
          if (tt == DType::f8_e4m3) v *= scales[size_t(r / 128 * sc + j / 128)];
          ref[size_t(i * hidden + j)] = v;
        }
      DeviceBuffer did(ids.size() * 4);
      DSI_CUDA_CHECK(cudaMemcpy(did.data(), ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
      DeviceTensor dout(ot, n_ids, hidden);
      dout.poison();
      Weight w{dt.t, Tensor{}};
      if (tt == DType::f8_e4m3) w.scale = dscale.t;
      embedding({w, did.as<int32_t>(), n_ids, dout.t}, s.get());
      expect_exact(download(dout.t), round_to(ref, ot), "embedding");
    }
}

TEST(CudaElementwise, KvCacheWriteFillsExactlyTheGivenSlots) {
  require_gpu();
  Stream s;
  const int64_t n_slots = 256, kv_dim = 512 + 64;
  for (DType pt : {DType::f32, DType::bf16})
    for (DType kt : {DType::f32, DType::bf16}) {
      Rng rng;
      SCOPED_TRACE(rng.trace() + " pool " + name(pt) + " kv " + name(kt));
      const int64_t n = 19;
      auto kv = round_to(rng.normal(size_t(n * kv_dim)), kt);
      std::vector<int64_t> slots(static_cast<size_t>(n));
      std::vector<int64_t> all(static_cast<size_t>(n_slots));
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng.gen);
      for (int64_t i = 0; i < n; ++i) slots[size_t(i)] = all[size_t(i)];
      auto dkv = upload(kv, kt, n, kv_dim);
      DeviceTensor pool(pt, n_slots, kv_dim);
      pool.poison();
      DeviceBuffer dslots(slots.size() * 8);
      DSI_CUDA_CHECK(cudaMemcpy(dslots.data(), slots.data(), slots.size() * 8, cudaMemcpyHostToDevice));
      kv_cache_write({pool.t, dkv.t, dslots.as<int64_t>()}, s.get());
      auto got = download(pool.t);
      std::vector<float> ref(got.size(), std::nanf(""));
      auto kv_r = round_to(kv, pt);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < kv_dim; ++j) ref[size_t(slots[size_t(i)] * kv_dim + j)] = kv_r[size_t(i * kv_dim + j)];
      expect_exact(got, ref, "pool after kv_cache_write (untouched rows stay NaN)");
    }
}

// The fused kernel against the four it replaces, on the layout the model gives it: q and kv side
// by side in one row of q_kv (strided views), V2-Lite's 16 heads and V3's 128 (q_a is normed
// elsewhere; here q is the rotated query either way), plus a slot outside the pool (skipped).
// The kernels share their arithmetic, so the results agree to the rope test's tolerance and the
// untouched pool rows stay NaN.
TEST(CudaElementwise, MlaRopeNormCacheEqualsNormRopeRopeWrite) {
  require_gpu();
  Stream s;
  const int64_t latent = 512, dr = 64, kv_dim = latent + dr, n_slots = 300;
  for (int heads : {16, 128})
    for (DType xt : {DType::f32, DType::bf16}) {
      Rng rng;
      SCOPED_TRACE(rng.trace() + " " + name(xt) + " heads " + std::to_string(heads));
      const int64_t n = heads == 16 ? 37 : 5, q_cols = heads * (128 + dr), cols = q_cols + kv_dim;
      auto rows = round_to(rng.normal(size_t(n * cols)), xt);
      auto w = rng.normal(size_t(latent));
      for (auto& v : w) v = 1.0f + 0.1f * v;
      std::vector<int32_t> pos(static_cast<size_t>(n));
      std::uniform_int_distribution<int32_t> pd(0, 32767);
      for (auto& p : pos) p = pd(rng.gen);
      std::vector<float> inv_freq(size_t(dr / 2));
      for (size_t i = 0; i < inv_freq.size(); ++i)
        inv_freq[i] = float(std::pow(10000.0, -2.0 * double(i) / double(dr)));
      std::vector<int64_t> slots(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) slots[size_t(i)] = (i * 7919) % n_slots;
      slots[1] = n_slots + 3;  // outside: skipped by both
      DeviceBuffer dpos(pos.size() * 4), dfreq(inv_freq.size() * 4), dslots(slots.size() * 8), dw(w.size() * 4);
      DSI_CUDA_CHECK(cudaMemcpy(dpos.data(), pos.data(), pos.size() * 4, cudaMemcpyHostToDevice));
      DSI_CUDA_CHECK(cudaMemcpy(dfreq.data(), inv_freq.data(), inv_freq.size() * 4, cudaMemcpyHostToDevice));
      DSI_CUDA_CHECK(cudaMemcpy(dslots.data(), slots.data(), slots.size() * 8, cudaMemcpyHostToDevice));
      DSI_CUDA_CHECK(cudaMemcpy(dw.data(), w.data(), w.size() * 4, cudaMemcpyHostToDevice));
      const float factor = 1.0f + 0.1f * std::log(40.0f);
      auto run = [&](bool fused) {
        auto d = upload(rows, xt, n, cols);
        DeviceTensor pool(DType::bf16, n_slots, kv_dim);
        pool.poison();
        const Tensor q = d.t.slice_cols(0, q_cols), kv = d.t.slice_cols(q_cols, kv_dim);
        if (fused) {
          mla_rope_norm_cache({q, kv, pool.t, dslots.as<int64_t>(), dw.as<float>(), latent, 1e-6f, heads, 128 + dr, 128,
                               latent, dpos.as<int32_t>(), dfreq.as<float>(), int(dr / 2), factor},
                              s.get());
        } else {
          const Tensor lat = kv.slice_cols(0, latent);
          rms_norm({lat, Tensor{}, Tensor::matrix(dw.data(), DType::f32, 1, latent), 1e-6f, lat}, s.get());
          rope({q, heads, 128 + dr, 128, dpos.as<int32_t>(), dfreq.as<float>(), int(dr / 2), factor}, s.get());
          rope({kv, 1, 0, latent, dpos.as<int32_t>(), dfreq.as<float>(), int(dr / 2), factor}, s.get());
          kv_cache_write({pool.t, kv, dslots.as<int64_t>()}, s.get());
        }
        return std::pair{download(d.t), download(pool.t)};
      };
      const auto [want_rows, want_pool] = run(false);
      const auto [got_rows, got_pool] = run(true);
      expect_close(got_rows, want_rows, tol_for(xt) * 2, "q and kv");
      for (size_t i = 0; i < want_pool.size(); ++i)
        ASSERT_EQ(std::isnan(got_pool[i]), std::isnan(want_pool[i])) << "pool element " << i;
      std::vector<float> got_written, want_written;
      for (size_t i = 0; i < want_pool.size(); ++i)
        if (!std::isnan(want_pool[i])) {
          got_written.push_back(got_pool[i]);
          want_written.push_back(want_pool[i]);
        }
      EXPECT_EQ(int64_t(want_written.size()), (n - 1) * kv_dim);
      expect_close(got_written, want_written, kBf16Tol * 2, "pool rows");
    }
}

TEST(CudaElementwise, QuantizeFp8MatchesHostQuantisationExactly) {
  require_gpu();
  Stream s;
  for (DType xt : {DType::f32, DType::bf16})
    for (int64_t n : {1, 7, 64}) {
      Rng rng;
      const int64_t k = 7168;
      SCOPED_TRACE(rng.trace() + " " + name(xt) + " n " + std::to_string(n));
      auto x = round_to(rng.normal(size_t(n * k), 2.0f), xt);
      for (int64_t j = 0; j < 128; ++j) x[size_t(j)] = 0.0f;  // an all-zero group: scale 1
      auto dx = upload(x, xt, n, k);
      DeviceTensor dq(DType::f8_e4m3, n, k);
      dq.poison();
      const int64_t groups = k / 128;
      DeviceTensor dscale(DType::f32, groups, n);  // group-major, token fastest
      dscale.poison();
      quantize_fp8({dx.t, dq.t, dscale.t.row<float>(0), 1, n}, s.get());
      auto q = download(dq.t);
      auto sc = download(dscale.t);
      std::vector<float> ref_q(q.size()), ref_s(sc.size());
      for (int64_t t = 0; t < n; ++t)
        for (int64_t g = 0; g < groups; ++g) {
          float amax = 0;
          for (int64_t j = 0; j < 128; ++j) amax = std::max(amax, std::fabs(x[size_t(t * k + g * 128 + j)]));
          const float sg = amax > 0 ? amax / kFp8E4m3Max : 1.0f;
          ref_s[size_t(g * n + t)] = sg;
          for (int64_t j = 0; j < 128; ++j) {
            const size_t i = size_t(t * k + g * 128 + j);
            ref_q[i] = fp8_e4m3_to_f32(f32_to_fp8_e4m3(x[i] / sg));
          }
        }
      expect_exact(sc, ref_s, "scales");
      expect_exact(q, ref_q, "codes");
    }
}

TEST(CudaElementwise, DequantizeFp8AppliesBlockScalesOfARowSlice) {
  require_gpu();
  Stream s;
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t rows0 = 700, cols = 300;  // partial edge blocks both ways
  auto q = round_to(rng.normal(size_t(rows0 * cols), 50.0f), DType::f8_e4m3);
  const int64_t sr = 6, sc = 3;
  auto scales = rng.uniform(size_t(sr * sc), 0.5f, 2.0f);
  auto dq = upload(q, DType::f8_e4m3, rows0, cols);
  auto ds = upload(scales, DType::f32, sr, sc);
  Weight w{dq.t, ds.t};
  const int64_t r0 = 200, nr = 333;  // a slice that starts inside a block (kv_b's heads do)
  Weight slice = w.slice_rows(r0, nr);
  for (DType ot : {DType::f32, DType::bf16}) {
    DeviceTensor out(ot, nr, cols);
    out.poison();
    dequantize_fp8({slice, out.t}, s.get());
    std::vector<float> ref(size_t(nr * cols));
    for (int64_t r = 0; r < nr; ++r)
      for (int64_t c = 0; c < cols; ++c)
        ref[size_t(r * cols + c)] = q[size_t((r0 + r) * cols + c)] * scales[size_t((r0 + r) / 128 * sc + c / 128)];
    expect_exact(download(out.t), round_to(ref, ot), std::string("dequantize_fp8 -> ") + name(ot));
  }
}

}  // namespace
}  // namespace dsi::cuda::test
