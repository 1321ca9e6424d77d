// The CPU GEMM against a double-precision reference: every dtype, shapes that are and are not
// multiples of the kernels' tiles, fp8 block scales with partial edge blocks and row slices,
// strided operands, NaN/Inf propagation, batches, thread-count invariance, and the errors.
//
// Tolerance, in units of float32 precision u = 2^-24 relative to S = sum_p |x_p| |w_p| (the
// condition of the sum): any float32 summation of k products, plus the one rounding of an
// fp8 code times its scale, is within (k + 2) u S of the exact result (Higham, Accuracy and
// Stability, 3.1). That worst case grows with k, so two sharper checks back it: integer-valued
// inputs whose every partial sum is exact must give the exact result, and for random inputs
// the root mean square of |error| / (u S) must stay below 2 (each rounding of a running sum
// costs at most u times that sum, and sums of random-signed terms stay below S whatever the
// summation order; a kernel that loses precision, say by accumulating in bf16, fails it).
#include "backend/cpu/gemm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

// The same source builds gemm_test (the kernels this machine's build uses) and
// gemm_portable_test (the scalar kernels forced); distinct suite names keep CTest's apart.
#ifdef DSI_GEMM_TEST_PORTABLE
#define GEMM_TEST(name) TEST(GemmPortable, name)
#else
#define GEMM_TEST(name) TEST(Gemm, name)
#endif

namespace dsi {
namespace {

constexpr double kUnitRoundoff = 1.0 / (1 << 24);

// An f32 matrix that owns its memory, with `pad` spare columns per row holding a sentinel.
struct Matrix {
  std::vector<float> data;
  Tensor t;
  Matrix(int64_t rows, int64_t cols, int64_t pad = 0)
      : data(size_t(std::max<int64_t>(rows * (cols + pad), 1)), kSentinel),
        t{data.data(), DType::f32, rows, cols, cols + pad} {}
  float& at(int64_t r, int64_t c) { return data[size_t(r * t.row_stride + c)]; }
  static constexpr float kSentinel = -12345.0f;
};

// A weight that owns its bytes and scales.
struct WeightData {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  Weight w;
};

struct WeightSpec {
  DType dtype = DType::bf16;
  int64_t rows = 0, cols = 0;
  int64_t pad = 0;  // spare elements per row (a row stride > cols)
  int block_rows = 128, block_cols = 128;
  bool integers = false;      // small integers and power-of-two scales: exact products
  bool large_scales = false;  // fp8 scales >= 2^8, where folding 2^120 would overflow
};

float random_uniform(std::mt19937& rng, float lo, float hi) {
  return std::uniform_real_distribution<float>(lo, hi)(rng);
}

// Random bits of a finite f16 in roughly [2^-16, 2): normals and some subnormals.
uint16_t random_f16(std::mt19937& rng) {
  auto sign = uint16_t((rng() & 1) << 15);
  auto exp = uint16_t(std::uniform_int_distribution<int>(0, 15)(rng));
  auto mant = uint16_t(rng() & 0x3ff);
  return uint16_t(sign | (exp << 10) | mant);
}

uint16_t f16_bits_of_integer(int v) {  // exact for |v| < 2048
  if (v == 0) return 0;
  const int sign = v < 0 ? 0x8000 : 0;
  int a = std::abs(v), e = 0;
  while ((a >> e) > 1) ++e;
  uint16_t mant = uint16_t(((a << 10) >> e) & 0x3ff);
  return uint16_t(sign | ((e + 15) << 10) | mant);
}

WeightData make_weight(const WeightSpec& s, std::mt19937& rng) {
  WeightData d;
  const int64_t stride = s.cols + s.pad;
  const size_t esize = dtype_size(s.dtype);
  d.bytes.assign(size_t(std::max<int64_t>(s.rows * stride, 1)) * esize, 0xAB);
  std::uniform_int_distribution<int> small(-15, 15);
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t c = 0; c < s.cols; ++c) {
      unsigned char* p = d.bytes.data() + size_t(r * stride + c) * esize;
      const int iv = small(rng);
      switch (s.dtype) {
        case DType::f32: {
          float f = s.integers ? float(iv) : random_uniform(rng, -1, 1);
          std::memcpy(p, &f, 4);
          break;
        }
        case DType::bf16: {
          uint16_t h = f32_to_bf16(s.integers ? float(iv) : random_uniform(rng, -1, 1));
          std::memcpy(p, &h, 2);
          break;
        }
        case DType::f16: {
          uint16_t h = s.integers ? f16_bits_of_integer(iv) : random_f16(rng);
          std::memcpy(p, &h, 2);
          break;
        }
        case DType::f8_e4m3:
          // Integers up to 15 are exact in e4m3; otherwise any finite code (0x7f is NaN).
          *p = s.integers ? f32_to_fp8_e4m3(float(iv))
                          : uint8_t((rng() & 0x80) | std::uniform_int_distribution<int>(0, 0x7e)(rng));
          break;
        default: ADD_FAILURE() << "unsupported dtype";
      }
    }
  }
  d.w.w = Tensor{d.bytes.data(), s.dtype, s.rows, s.cols, stride};
  if (s.dtype == DType::f8_e4m3) {
    const int64_t srows = (s.rows + s.block_rows - 1) / s.block_rows;
    const int64_t scols = (s.cols + s.block_cols - 1) / s.block_cols;
    d.scales.resize(size_t(std::max<int64_t>(srows * scols, 1)));
    for (float& f : d.scales) {
      if (s.integers) f = std::ldexp(1.0f, std::uniform_int_distribution<int>(-2, 2)(rng));
      else if (s.large_scales) f = random_uniform(rng, 256, 4096);
      else f = random_uniform(rng, 1e-4f, 1e-2f);  // weight_scale_inv of real checkpoints
    }
    d.w.scale = Tensor{d.scales.data(), DType::f32, srows, scols, scols};
    d.w.block_rows = s.block_rows;
    d.w.block_cols = s.block_cols;
  }
  return d;
}

Matrix make_x(int64_t rows, int64_t cols, std::mt19937& rng, bool integers = false, int64_t pad = 0) {
  Matrix m(rows, cols, pad);
  std::uniform_int_distribution<int> small(-8, 8);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m.at(r, c) = integers ? float(small(rng)) : random_uniform(rng, -1, 1);
  return m;
}

// The exact weight element in double: the code's value times its block scale, unrounded.
double weight_value(const Weight& w, int64_t r, int64_t c) {
  double v = load_as_f32(w.w.data, w.w.dtype, r * w.w.row_stride + c);
  return w.quantized() ? v * double(w.block_scale(r, c)) : v;
}

struct Reference {
  std::vector<double> y, sum_abs;  // [m, n_out] each
  int64_t n_out = 0, k = 0;
};

Reference reference(const Tensor& x, const Weight& w, bool transposed) {
  Reference ref;
  ref.n_out = transposed ? w.cols() : w.rows();
  ref.k = transposed ? w.rows() : w.cols();
  ref.y.assign(size_t(x.rows * ref.n_out), 0.0);
  ref.sum_abs.assign(ref.y.size(), 0.0);
  std::vector<double> wt(size_t(ref.n_out * ref.k));  // [n_out, k]
  for (int64_t o = 0; o < ref.n_out; ++o)
    for (int64_t p = 0; p < ref.k; ++p)
      wt[size_t(o * ref.k + p)] = transposed ? weight_value(w, p, o) : weight_value(w, o, p);
  for (int64_t t = 0; t < x.rows; ++t) {
    const float* xr = x.row<const float>(t);
    for (int64_t o = 0; o < ref.n_out; ++o) {
      double s = 0, a = 0;
      for (int64_t p = 0; p < ref.k; ++p) {
        s += double(xr[p]) * wt[size_t(o * ref.k + p)];
        a += std::fabs(double(xr[p]) * wt[size_t(o * ref.k + p)]);
      }
      ref.y[size_t(t * ref.n_out + o)] = s;
      ref.sum_abs[size_t(t * ref.n_out + o)] = a;
    }
  }
  return ref;
}

// Compares y with the reference (see the tolerance at the top); `exact` demands equality.
void expect_close(const Tensor& y, const Reference& ref, bool exact = false) {
  int64_t n_bad = 0;
  std::string first_bad;
  double worst = 0, sum_sq = 0;
  int64_t n_finite = 0;
  const double bound = double(ref.k + 2);  // in units of u * S
  for (int64_t t = 0; t < y.rows; ++t) {
    for (int64_t o = 0; o < ref.n_out; ++o) {
      const double want = ref.y[size_t(t * ref.n_out + o)], s = ref.sum_abs[size_t(t * ref.n_out + o)];
      const float got = y.row<const float>(t)[o];
      bool ok;
      if (std::isnan(want)) {
        ok = std::isnan(got);
      } else if (std::isinf(want)) {
        ok = double(got) == want;
      } else if (!std::isfinite(got)) {
        ok = false;
      } else {
        const double err = std::fabs(double(got) - want);
        const double units = s > 0 ? err / (kUnitRoundoff * s) : (err == 0 ? 0 : INFINITY);
        worst = std::max(worst, units);
        sum_sq += units * units;
        ++n_finite;
        ok = exact ? double(got) == want : units <= bound;
      }
      if (!ok && n_bad++ == 0)
        first_bad = "y[" + std::to_string(t) + "][" + std::to_string(o) + "] = " + std::to_string(got) +
                    ", reference " + std::to_string(want) + ", sum |x||w| " + std::to_string(s);
    }
  }
  EXPECT_EQ(n_bad, 0) << "first: " << first_bad << " (worst error " << worst << " u S, bound " << bound
                      << " u S)";
  if (n_finite > 0 && !exact) {
    EXPECT_LE(std::sqrt(sum_sq / double(n_finite)), 2.0) << "rms error in units of u S, worst " << worst;
  }
}

// Spare columns of a padded matrix keep their sentinel: nothing was written outside y.
void expect_padding_untouched(const Matrix& m) {
  for (int64_t r = 0; r < m.t.rows; ++r)
    for (int64_t c = m.t.cols; c < m.t.row_stride; ++c)
      ASSERT_EQ(m.data[size_t(r * m.t.row_stride + c)], Matrix::kSentinel) << "row " << r << " col " << c;
}

const DType kWeightTypes[] = {DType::f32, DType::bf16, DType::f16, DType::f8_e4m3};
const int64_t kTokenCounts[] = {1, 2, 3, 7, 16, 33, 150};
// (n, k): tile remainders of 1, 7, 96, 320 (not multiples of 8, 16, 128) and chunk-crossing k.
const std::pair<int64_t, int64_t> kShapes[] = {{1, 1},    {7, 7},     {1, 320},   {320, 1},   {96, 320},
                                               {320, 96}, {128, 128}, {256, 384}, {40, 1100}, {17, 600}};

struct ThreadCount {  // sets the OpenMP threads for a scope
  explicit ThreadCount(int n) : saved(omp_get_max_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved); }
  int saved;
};

GEMM_TEST(UsesTheExpectedKernels) {
#if defined(DSI_GEMM_TEST_PORTABLE) || !(defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
  EXPECT_EQ(cpu::gemm_isa(), "portable");
#else
  EXPECT_EQ(cpu::gemm_isa(), "avx2");
#endif
}

// Every weight dtype, shape and token count against the float64 reference: y = x W^T, or
// y = x W when transposed.
void check_all_dtypes_and_shapes(bool transposed, unsigned seed) {
  std::mt19937 rng(seed);
  for (DType dt : kWeightTypes) {
    for (auto [n, k] : kShapes) {
      WeightData w = make_weight({.dtype = dt, .rows = n, .cols = k}, rng);
      for (int64_t m : kTokenCounts) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                     " k=" + std::to_string(k));
        Matrix x = make_x(m, transposed ? n : k, rng);
        Matrix y(m, transposed ? k : n);
        if (transposed) cpu::linear_transposed(x.t, w.w, y.t);
        else cpu::linear(x.t, w.w, y.t);
        expect_close(y.t, reference(x.t, w.w, transposed));
      }
    }
  }
}

GEMM_TEST(LinearMatchesReferenceForAllDtypesAndShapes) { check_all_dtypes_and_shapes(false, 1); }

GEMM_TEST(LinearTransposedMatchesReferenceForAllDtypesAndShapes) { check_all_dtypes_and_shapes(true, 2); }

GEMM_TEST(IntegerInputsGiveExactResults) {
  // Every product and partial sum is a small multiple of 1/4 below 2^22: exact in float32, so
  // any dropped, repeated or misplaced term shows as a mismatch.
  std::mt19937 rng(3);
  for (DType dt : kWeightTypes) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{7, 7}, {96, 320}, {33, 2100}, {300, 130}}) {
      WeightData w = make_weight(
          {.dtype = dt, .rows = n, .cols = k, .block_rows = 32, .block_cols = 48, .integers = true}, rng);
      for (int64_t m : {1, 4, 5, 33}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                     " k=" + std::to_string(k));
        Matrix x = make_x(m, k, rng, true);
        Matrix y(m, n);
        cpu::linear(x.t, w.w, y.t);
        expect_close(y.t, reference(x.t, w.w, false), true);
        Matrix xt = make_x(m, n, rng, true);
        Matrix yt(m, k);
        cpu::linear_transposed(xt.t, w.w, yt.t);
        expect_close(yt.t, reference(xt.t, w.w, true), true);
      }
    }
  }
}

GEMM_TEST(Fp8BlockSizesRowSlicesAndLargeScales) {
  std::mt19937 rng(4);
  struct Case {
    int block_rows, block_cols;
    bool large_scales;
  };
  for (Case c : {Case{128, 128, false}, Case{7, 5, false}, Case{32, 48, false}, Case{1, 1, false},
                 Case{128, 128, true}, Case{16, 24, true}}) {
    // A [300, 200] matrix and row slices of it, the way MLA takes a head's rows of kv_b_proj.
    WeightData full = make_weight({.dtype = DType::f8_e4m3,
                                   .rows = 300,
                                   .cols = 200,
                                   .block_rows = c.block_rows,
                                   .block_cols = c.block_cols,
                                   .large_scales = c.large_scales},
                                  rng);
    for (auto [r0, n] : {std::pair<int64_t, int64_t>{0, 300}, {130, 128}, {57, 100}, {299, 1}}) {
      const Weight w = full.w.slice_rows(r0, n);
      for (int64_t m : {1, 3, 16, 150}) {
        SCOPED_TRACE("blocks " + std::to_string(c.block_rows) + "x" + std::to_string(c.block_cols) +
                     (c.large_scales ? " large scales" : "") + " rows [" + std::to_string(r0) + ", " +
                     std::to_string(r0 + n) + ") m=" + std::to_string(m));
        Matrix x = make_x(m, 200, rng);
        Matrix y(m, n);
        cpu::linear(x.t, w, y.t);
        expect_close(y.t, reference(x.t, w, false));
        Matrix xt = make_x(m, n, rng);
        Matrix yt(m, 200);
        cpu::linear_transposed(xt.t, w, yt.t);
        expect_close(yt.t, reference(xt.t, w, true));
      }
    }
  }
}

GEMM_TEST(Fp8LongRowsOfSmallBlocks) {
  // 625 scale blocks of 8 columns per row: more than the dot path folds at once.
  std::mt19937 rng(10);
  WeightData w =
      make_weight({.dtype = DType::f8_e4m3, .rows = 19, .cols = 5000, .block_rows = 4, .block_cols = 8}, rng);
  for (int64_t m : {1, 3, 8, 9}) {
    SCOPED_TRACE("m=" + std::to_string(m));
    Matrix x = make_x(m, 5000, rng);
    Matrix y(m, 19);
    cpu::linear(x.t, w.w, y.t);
    expect_close(y.t, reference(x.t, w.w, false));
  }
}

GEMM_TEST(StridedOperandsAreReadAndWrittenInPlace) {
  std::mt19937 rng(5);
  for (DType dt : kWeightTypes) {
    WeightData w = make_weight({.dtype = dt, .rows = 70, .cols = 90, .pad = 13, .block_cols = 32}, rng);
    for (int64_t m : {1, 2, 7, 40}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(m));
      Matrix x = make_x(m, 90, rng, false, 11);
      Matrix y(m, 70, 5);
      cpu::linear(x.t, w.w, y.t);
      expect_close(y.t, reference(x.t, w.w, false));
      expect_padding_untouched(y);
      // A column slice of a wider activation, as one head's part of a row.
      Matrix xt = make_x(m, 3 * 70, rng);
      Matrix yt(m, 3 * 90);
      const Tensor x_head = xt.t.slice_cols(70, 70), y_head = yt.t.slice_cols(90, 90);
      cpu::linear_transposed(x_head, w.w, y_head);
      expect_close(y_head, reference(x_head, w.w, true));
      for (int64_t t = 0; t < m; ++t)
        for (int64_t c : {int64_t(0), int64_t(89), int64_t(180), int64_t(269)})
          EXPECT_EQ(yt.at(t, c), Matrix::kSentinel) << "outside the slice, row " << t << " col " << c;
    }
  }
}

GEMM_TEST(NanAndInfPropagateLikeTheReference) {
  std::mt19937 rng(6);
  for (DType dt : kWeightTypes) {
    for (int64_t m : {1, 3, 20}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(m));
      WeightData w = make_weight({.dtype = dt, .rows = 40, .cols = 300}, rng);
      // A NaN weight poisons its output column, whatever x is.
      auto* bytes = w.bytes.data();
      const size_t e = dtype_size(dt);
      // Row 5 ends in a NaN (the kernels' scalar tails), row 17 holds one in a full vector
      // (+-inf in the float types), row 30 one in the last whole vector.
      const int64_t nan_at = 5 * 300 + 299, nan_at2 = 17 * 300 + 8, nan_at3 = 30 * 300 + 290;
      switch (dt) {
        case DType::f32: {
          float f = std::nanf("");
          std::memcpy(bytes + nan_at * e, &f, 4);
          std::memcpy(bytes + nan_at3 * e, &f, 4);
          f = INFINITY;
          std::memcpy(bytes + nan_at2 * e, &f, 4);
          break;
        }
        case DType::bf16:
        case DType::f16: {
          uint16_t h = dt == DType::bf16 ? 0x7fc0 : 0x7e00, inf = dt == DType::bf16 ? 0xff80 : 0xfc00;
          std::memcpy(bytes + nan_at * e, &h, 2);
          std::memcpy(bytes + nan_at3 * e, &h, 2);
          std::memcpy(bytes + nan_at2 * e, &inf, 2);
          break;
        }
        default:  // e4m3fn has no infinity; both NaN codes
          bytes[nan_at] = 0x7f;
          bytes[nan_at2] = 0xff;
          bytes[nan_at3] = 0x7f;
      }
      Matrix x = make_x(m, 300, rng);
      x.at(m - 1, 3) = std::nanf("");      // poisons row m - 1
      if (m > 1) x.at(0, 100) = INFINITY;  // row 0: +-inf by the sign of each weight
      Matrix y(m, 40);
      cpu::linear(x.t, w.w, y.t);
      const Reference ref = reference(x.t, w.w, false);
      expect_close(y.t, ref);
      for (int64_t t = 0; t < m; ++t) {
        EXPECT_TRUE(std::isnan(y.at(t, 5))) << "row " << t;
        EXPECT_TRUE(std::isnan(y.at(t, 30))) << "row " << t;
      }
      // Finite everywhere else when x and W are.
      if (m > 2) {
        for (int64_t o = 0; o < 40; ++o) {
          if (o == 5 || o == 17 || o == 30) continue;
          EXPECT_TRUE(std::isfinite(y.at(1, o))) << "col " << o;
        }
      }
      Matrix xt = make_x(m, 40, rng);
      xt.at(0, 5) = 0.0f;  // 0 x NaN is still NaN
      Matrix yt(m, 300);
      cpu::linear_transposed(xt.t, w.w, yt.t);
      expect_close(yt.t, reference(xt.t, w.w, true));
      EXPECT_TRUE(std::isnan(yt.at(0, 299)));
    }
  }
}

GEMM_TEST(EmptyProductsWriteZerosOrNothing) {
  std::mt19937 rng(7);
  WeightData w = make_weight({.dtype = DType::bf16, .rows = 9, .cols = 0}, rng);
  for (int64_t m : {1, 10}) {
    Matrix x(m, 0), y(m, 9);
    cpu::linear(x.t, w.w, y.t);  // k = 0: an empty sum
    for (float v : y.data) EXPECT_EQ(v, 0.0f);
  }
  WeightData w2 = make_weight({.dtype = DType::f8_e4m3, .rows = 5, .cols = 6}, rng);
  Matrix x0(0, 6), y0(0, 5);
  cpu::linear(x0.t, w2.w, y0.t);  // no tokens
  WeightData w3 = make_weight({.dtype = DType::f32, .rows = 0, .cols = 6}, rng);
  Matrix x1(3, 6), y1(3, 0, 2);
  cpu::linear(x1.t, w3.w, y1.t);  // no outputs
  expect_padding_untouched(y1);
}

GEMM_TEST(ResultsDoNotDependOnTheThreadCountOrBatching) {
  std::mt19937 rng(8);
  // Experts of one MoE layer: different token counts (0 included), dtypes and sizes.
  std::vector<WeightData> weights;
  std::vector<Matrix> xs, ys, singles;
  std::vector<bool> transposed;
  for (int e = 0; e < 24; ++e) {
    const DType dt = kWeightTypes[e % 4];
    const int64_t n = 64 + 37 * (e % 5), k = 96 + 50 * (e % 3), m = (e * 7) % 6 + (e == 3 ? 150 : 0);
    weights.push_back(make_weight({.dtype = dt, .rows = n, .cols = k}, rng));
    transposed.push_back(e % 6 == 5);
    xs.push_back(make_x(m, transposed.back() ? n : k, rng));
    ys.emplace_back(m, transposed.back() ? k : n);
    singles.emplace_back(m, transposed.back() ? k : n);
  }
  std::vector<cpu::GemmProblem> problems;
  for (size_t i = 0; i < weights.size(); ++i)
    problems.push_back({xs[i].t, weights[i].w, ys[i].t, transposed[i]});
  {
    ThreadCount one(1);
    for (size_t i = 0; i < weights.size(); ++i)
      (transposed[i] ? cpu::linear_transposed : cpu::linear)(xs[i].t, weights[i].w, singles[i].t);
  }
  for (int n_threads : {1, 2, 3, 5}) {
    ThreadCount threads(n_threads);
    for (Matrix& y : ys) std::fill(y.data.begin(), y.data.end(), Matrix::kSentinel);
    cpu::linear_batch(problems);
    for (size_t i = 0; i < weights.size(); ++i) {
      SCOPED_TRACE("problem " + std::to_string(i) + " threads " + std::to_string(n_threads));
      EXPECT_EQ(std::memcmp(ys[i].data.data(), singles[i].data.data(), ys[i].data.size() * 4), 0);
      if (n_threads == 1) expect_close(ys[i].t, reference(xs[i].t, weights[i].w, transposed[i]));
    }
  }
}

// Runs fn, expects a dsi::Error whose message contains `needle`.
template <class Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning \"" << needle << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

GEMM_TEST(BadInputsAreClearErrorsAndLeaveYUntouched) {
  std::mt19937 rng(9);
  WeightData w = make_weight({.dtype = DType::bf16, .rows = 8, .cols = 16}, rng);
  WeightData q = make_weight({.dtype = DType::f8_e4m3, .rows = 8, .cols = 16}, rng);
  Matrix x = make_x(2, 16, rng), y(2, 8);
  expect_error([&] { cpu::linear(make_x(2, 15, rng).t, w.w, y.t); }, "x [2, 15] needs 16 columns");
  expect_error([&] { cpu::linear(x.t, w.w, Matrix(2, 9).t); }, "y must be [2, 8]");
  expect_error([&] { cpu::linear(x.t, w.w, Matrix(3, 8).t); }, "y must be [2, 8]");
  expect_error([&] { cpu::linear_transposed(x.t, w.w, Matrix(2, 16).t); }, "x [2, 16] needs 8 columns");
  Tensor x_bf16 = x.t;
  x_bf16.dtype = DType::bf16;
  expect_error([&] { cpu::linear(x_bf16, w.w, y.t); }, "x must be F32, got BF16");
  Tensor y_f16 = y.t;
  y_f16.dtype = DType::f16;
  expect_error([&] { cpu::linear(x.t, w.w, y_f16); }, "y must be F32");
  Weight wi = w.w;
  wi.w.dtype = DType::i32;
  expect_error([&] { cpu::linear(x.t, wi, y.t); }, "weight dtype I32 is not supported");
  Weight no_scale = q.w;
  no_scale.scale = Tensor{};
  expect_error([&] { cpu::linear(x.t, no_scale, y.t); }, "has no block scales");
  Weight scaled_bf16 = w.w;
  scaled_bf16.scale = q.w.scale;
  expect_error([&] { cpu::linear(x.t, scaled_bf16, y.t); }, "BF16 weight cannot have block scales");
  Weight small_blocks = q.w;
  small_blocks.block_cols = 4;  // needs 4 scale columns, there is 1
  expect_error([&] { cpu::linear(x.t, small_blocks, y.t); }, "need scales [1, 4], got [1, 1]");
  Weight past_end = q.w;
  past_end.row_offset = 125;  // rows [125, 133) reach a second row of blocks
  expect_error([&] { cpu::linear(x.t, past_end, y.t); }, "need scales [2, 1]");
  Weight zero_block = q.w;
  zero_block.block_rows = 0;
  expect_error([&] { cpu::linear(x.t, zero_block, y.t); }, "block size must be positive");
  Tensor bad_stride = x.t;
  bad_stride.row_stride = 3;
  expect_error([&] { cpu::linear(bad_stride, w.w, y.t); }, "row stride 3 smaller than its 16 columns");
  Tensor no_data = x.t;
  no_data.data = nullptr;
  expect_error([&] { cpu::linear(no_data, w.w, y.t); }, "x [2, 16] has no data");
  // y on top of x: the kernels would read what they already wrote.
  Matrix xy = make_x(2, 16, rng);
  expect_error([&] { cpu::linear(xy.t, w.w, xy.t.slice_cols(0, 8)); }, "overlaps");
  for (float v : y.data) EXPECT_EQ(v, Matrix::kSentinel) << "y was written before the error";

  Matrix y2(2, 8), y3(2, 16), y_bad(2, 7);
  std::vector<cpu::GemmProblem> batch = {{x.t, w.w, y.t}, {x.t, q.w, y2.t}, {x.t, w.w, y_bad.t}};
  expect_error([&] { cpu::linear_batch(batch); }, "(problem 2 of 3)");
  batch = {{x.t, w.w, y.t}, {x.t, q.w, y.t}};
  expect_error([&] { cpu::linear_batch(batch); }, "overlaps another operand");
  batch = {{x.t, w.w, y.t}, {y.t.slice_cols(0, 8), w.w.slice_rows(0, 8), y3.t, true}};
  expect_error([&] { cpu::linear_batch(batch); }, "overlaps");
  for (float v : y.data) EXPECT_EQ(v, Matrix::kSentinel) << "y was written before the error";
  for (float v : y2.data) EXPECT_EQ(v, Matrix::kSentinel) << "y2 was written before the error";
}

}  // namespace
}  // namespace dsi
