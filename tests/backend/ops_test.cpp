// The shared op layer and the step context on the CPU backend: bad shapes and dtypes are
// named errors raised before the backend runs; a step is validated once with an error naming
// the field at fault and laid out at fixed addresses; the four MoE ops together equal a
// per-token reference; the factory refuses what this build or device cannot do.
//
// Tolerance of the MoE check, in units of float32 precision u = 2^-24 (Higham, Accuracy and
// Stability, 3.1: a float32 sum of m products is within (m + 2) u sum |products| of the exact
// one): the gate and up dot products' bounds are carried through SiLU gating (|silu'| <= 1.1)
// and the down projection, plus the weighted sum over the k choices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend_factory.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/ops.h"
#include "backend/step_context.h"
#include "core/error.h"

namespace dsi {
namespace {

// Runs fn and returns the Error's message ("" when nothing was thrown).
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(stmt, text) \
  EXPECT_NE(error_of([&] { stmt; }).find(text), std::string::npos) << "got: " << error_of([&] { stmt; })

class OpsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend();
  Buffer f32(int64_t rows, int64_t cols) { return be->alloc(DType::f32, rows, cols); }
  Buffer i32(int64_t rows, int64_t cols) { return be->alloc(DType::i32, rows, cols); }
};

TEST_F(OpsTest, ShapeAndDtypeErrorsNameTheOpAndOperand) {
  Buffer x = f32(3, 8), y = f32(3, 7), w = f32(1, 8), ids = i32(3, 8);
  EXPECT_ERROR(ops::add(*be, x.t, y.t), "add: x [3, 8] and y [3, 7] differ in shape");
  EXPECT_ERROR(ops::rms_norm(*be, ids.t, w.t, 1e-6f, x.t), "rms_norm: x must be F32, got I32");
  EXPECT_ERROR(ops::rms_norm(*be, x.t, f32(1, 5).t, 1e-6f, x.t), "rms_norm: weight has 5 values for rows of 8");
  Buffer w47 = f32(4, 7), w48 = f32(4, 8);
  Weight lin;
  lin.w = w47.t;
  EXPECT_ERROR(ops::linear(*be, x.t, lin, f32(3, 4).t), "linear: x has 8 columns");
  lin.w = w48.t;
  EXPECT_ERROR(ops::linear(*be, x.t, lin, f32(3, 5).t), "linear: out is [3, 5], expected [3, 4]");
  EXPECT_ERROR(ops::linear(*be, x.t, lin, x.t.slice_cols(0, 4)), "linear: out overlaps x");
  EXPECT_ERROR(ops::silu_mul(*be, x.t, y.t, x.t), "silu_mul: gate [3, 8] and up [3, 7] differ in shape");
  EXPECT_ERROR(ops::gather_rows(*be, x.t, f32(2, 1).t, f32(2, 8).t), "gather_rows: rows must be I32");
  // A valid call goes through.
  EXPECT_EQ(error_of([&] { ops::linear(*be, x.t, lin, f32(3, 4).t); }), "");
}

TEST_F(OpsTest, MoeOpsCheckTheirOperands) {
  RoutingParams p{8, 2, 1, 1, RoutingScore::routing_score_softmax, RoutingGroupScore::routing_group_none, false, false, 1};
  Buffer logits = f32(4, 8), ids = i32(4, 2), wts = f32(4, 2), counts = i32(1, 8);
  EXPECT_ERROR(ops::moe_route(*be, logits.t, {}, p, ids.t, wts.t, i32(1, 7).t),
               "moe_route: expert_counts is [1, 7], expected [1, 8]");
  p.top_k = 9;
  EXPECT_ERROR(ops::moe_route(*be, logits.t, {}, p, ids.t, wts.t, counts.t), "inconsistent routing parameters");
  Buffer x = f32(4, 16), offsets = i32(1, 9), row_map = i32(4, 2);
  EXPECT_ERROR(ops::moe_dispatch(*be, x.t, ids.t, counts.t, f32(7, 16).t, offsets.t, row_map.t),
               "moe_dispatch: x_sorted is [7, 16], expected [8, 16]");
  EXPECT_ERROR(ops::moe_combine(*be, f32(8, 16).t, row_map.t, ids.t, f32(4, 3).t, {}, x.t),
               "moe_combine: expert_weights is [4, 3], expected [4, 2]");
  EXPECT_ERROR(ops::moe_combine(*be, f32(8, 16).t, row_map.t, ids.t, wts.t, f32(4, 15).t, x.t),
               "moe_combine: shared [4, 15] and out [4, 16] differ in shape");
}

// A step of two sequences on a cache of 4 blocks of 4 tokens.
ForwardBatch two_sequences() {
  ForwardBatch b;
  b.token_ids = {5, 6, 7, 8};
  b.positions = {0, 1, 2, 6};
  b.kv_slots = {8, 9, 10, 6};
  b.sequences = {{0, 3, 0, {2}}, {3, 1, 6, {3, 1}}};
  b.logit_rows = {2, 3};
  return b;
}

class StepTest : public OpsTest {
 protected:
  StepContext ctx{*be, StepLimits{8, 2, 3, 2}, StepBounds{100, 4, 4}};
};

TEST_F(StepTest, LaysOutTheStepAtFixedAddresses) {
  const void* before = ctx.device.t.data;
  ctx.begin(*be, two_sequences());
  EXPECT_EQ(ctx.device.t.data, before);
  EXPECT_EQ(ctx.n_tokens(), 4);
  EXPECT_EQ(ctx.n_seqs(), 2);
  EXPECT_EQ(ctx.host.max_context, 7);
  EXPECT_EQ(ctx.token_ids.row<const int32_t>(3)[0], 8);
  EXPECT_EQ(ctx.positions.row<const int32_t>(3)[0], 6);
  EXPECT_EQ(ctx.kv_slots.row<const int64_t>(1)[0], 9);
  EXPECT_EQ(ctx.seq_n_cached.row<const int32_t>(1)[0], 6);
  EXPECT_EQ(ctx.logit_rows.row<const int32_t>(1)[0], 3);
  // The block table keeps its capacity's stride; unused entries are -1.
  EXPECT_EQ(ctx.block_table.row_stride, 3);
  EXPECT_EQ(ctx.block_table.cols, 2);
  const int32_t* t = static_cast<const int32_t*>(ctx.block_table.data);
  EXPECT_EQ(std::vector<int32_t>(t, t + 6), (std::vector<int32_t>{2, -1, -1, 3, 1, -1}));
  // The next step reuses the same buffers.
  ForwardBatch one;
  one.token_ids = {9};
  one.positions = {7};
  one.kv_slots = {7};
  one.sequences = {{0, 1, 7, {3, 1}}};
  one.logit_rows = {0};
  ctx.begin(*be, one);
  EXPECT_EQ(ctx.token_ids.data, static_cast<const void*>(static_cast<const int32_t*>(before) + 2 * 8));
  EXPECT_EQ(ctx.token_ids.row<const int32_t>(0)[0], 9);
}

TEST_F(StepTest, RejectsBadStepsNamingTheField) {
  auto bad = [&](auto edit) {
    ForwardBatch b = two_sequences();
    edit(b);
    return error_of([&] { ctx.begin(*be, b); });
  };
  EXPECT_EQ(bad([](ForwardBatch&) {}), "");
  EXPECT_NE(bad([](ForwardBatch& b) { b.token_ids[1] = 100; }).find("token id 100 is outside the vocabulary [0, 100)"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) { b.kv_slots[0] = 16; }).find("kv slot 16 outside the cache of 16 rows"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) { b.sequences[1].block_table = {3, 4}; }).find("block 4 outside [0, 4)"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) { b.sequences[1].block_table = {3}; }).find("1 blocks cannot hold 7 tokens"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) { b.positions[1] = 4; }).find("row 1 has position 4, expected 1"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) { b.sequences[1].first_row = 2; }).find("expected to start at row 3"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) { b.logit_rows[0] = 4; }).find("logit row 4 outside the batch of 4"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) { b.logit_rows.push_back(0); }).find("3 logit rows exceed the workspace's 2"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) {
              b.sequences[1].block_table = {3, 1, 0, 2};
            }).find("4 blocks exceed the workspace's 3 per sequence"),
            std::string::npos);
  EXPECT_NE(bad([](ForwardBatch& b) {
              for (int i = 0; i < 5; ++i) b.token_ids.push_back(1);
            }).find("9 tokens exceed the workspace's 8"),
            std::string::npos);
}

// Route, dispatch, grouped MLP and combine against a per-token double-precision MoE.
TEST_F(OpsTest, MoeFourOpsEqualThePerTokenReference) {
  const int n = 13, hidden = 24, inter = 16, E = 6, k = 2;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  auto random = [&](int64_t rows, int64_t cols) {
    Buffer b = f32(rows, cols);
    for (int64_t i = 0; i < rows * cols; ++i) b.t.row<float>(0)[i] = u(rng);
    return b;
  };
  std::vector<Buffer> keep;
  ExpertMlpWeights w;
  for (int e = 0; e < E; ++e)
    for (auto [ew, rows, cols] : {std::tuple{&w.gate, inter, hidden}, {&w.up, inter, hidden}, {&w.down, hidden, inter}}) {
      keep.push_back(random(rows, cols));
      Weight one;
      one.w = keep.back().t;
      ew->experts.push_back(one);
    }
  Buffer x = random(n, hidden), logits = random(n, E);
  Buffer ids = i32(n, k), wts = f32(n, k), counts = i32(1, E), offsets = i32(1, E + 1), row_map = i32(n, k);
  Buffer x_sorted = f32(n * k, hidden), gate = f32(n * k, inter), up = f32(n * k, inter), y_sorted = f32(n * k, hidden);
  Buffer out = f32(n, hidden);
  RoutingParams p{E, k, 1, 1, RoutingScore::routing_score_softmax, RoutingGroupScore::routing_group_none, false, false, 1.5f};
  ops::moe_route(*be, logits.t, {}, p, ids.t, wts.t, counts.t);
  ops::moe_dispatch(*be, x.t, ids.t, counts.t, x_sorted.t, offsets.t, row_map.t);
  ops::moe_grouped_mlp(*be, x_sorted.t, offsets.t, w, gate.t, up.t, y_sorted.t);
  ops::moe_combine(*be, y_sorted.t, row_map.t, ids.t, wts.t, {}, out.t);

  // Counts and offsets agree with the chosen ids; each (token, choice) row lies in its expert's range.
  std::vector<int> want_counts(E, 0);
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < k; ++j) ++want_counts[size_t(ids.t.row<int32_t>(t)[j])];
  const int32_t* off = offsets.t.row<int32_t>(0);
  for (int e = 0; e < E; ++e) {
    EXPECT_EQ(counts.t.row<int32_t>(0)[e], want_counts[size_t(e)]) << e;
    EXPECT_EQ(off[e + 1] - off[e], want_counts[size_t(e)]) << e;
  }
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < k; ++j) {
      const int e = ids.t.row<int32_t>(t)[j], row = row_map.t.row<int32_t>(t)[j];
      EXPECT_TRUE(row >= off[e] && row < off[e + 1]) << t << " " << j;
      EXPECT_EQ(std::memcmp(x_sorted.t.row<float>(row), x.t.row<float>(t), hidden * 4), 0);
    }
  // The output against the MLPs computed per token in double, with the float32 error bound
  // carried through each stage (see the top of the file).
  const double unit = std::ldexp(1.0, -24);
  for (int t = 0; t < n; ++t) {
    std::vector<double> want(hidden, 0), bound(hidden, 0);
    double sum_wy = 0;
    for (int j = 0; j < k; ++j) {
      const int e = ids.t.row<int32_t>(t)[j];
      const double weight = wts.t.row<float>(t)[j];
      std::vector<double> act(inter), act_err(inter);
      for (int i = 0; i < inter; ++i) {
        double g = 0, v = 0, sg = 0, sv = 0;
        for (int c = 0; c < hidden; ++c) {
          const double xc = x.t.row<float>(t)[c];
          g += xc * w.gate.experts[size_t(e)].at(i, c);
          v += xc * w.up.experts[size_t(e)].at(i, c);
          sg += std::fabs(xc * w.gate.experts[size_t(e)].at(i, c));
          sv += std::fabs(xc * w.up.experts[size_t(e)].at(i, c));
        }
        const double silu = g / (1 + std::exp(-g));
        act[size_t(i)] = silu * v;
        // |silu'| <= 1.1; the gating itself rounds a few times.
        act_err[size_t(i)] = (hidden + 2) * unit * (1.1 * sg * std::fabs(v) + std::fabs(silu) * sv) +
                             8 * unit * std::fabs(act[size_t(i)]);
      }
      for (int c = 0; c < hidden; ++c) {
        double y = 0, sy = 0, prop = 0;
        for (int i = 0; i < inter; ++i) {
          const double d = w.down.experts[size_t(e)].at(c, i);
          y += act[size_t(i)] * d;
          sy += std::fabs(act[size_t(i)] * d);
          prop += act_err[size_t(i)] * std::fabs(d);
        }
        want[size_t(c)] += weight * y;
        bound[size_t(c)] += std::fabs(weight) * (prop + (inter + 2) * unit * sy);
        sum_wy += std::fabs(weight * y);
      }
    }
    for (int c = 0; c < hidden; ++c)
      EXPECT_NEAR(out.t.row<float>(t)[c], want[size_t(c)], bound[size_t(c)] + (k + 1) * unit * sum_wy)
          << t << " " << c;
  }
}

TEST(BackendFactory, RefusesWhatTheBuildOrDeviceCannotDo) {
  EXPECT_NE(error_of([] { parse_device("tpu"); }).find("--device tpu is not supported (auto, cpu, cuda)"),
            std::string::npos);
  BackendOptions o;
  o.device = DeviceKind::device_cpu;
  o.dtype = "bfloat16";
  EXPECT_NE(error_of([&] { make_backend(o); }).find("--dtype bfloat16 is not supported by the CPU backend"),
            std::string::npos);
  o.dtype = "half";
  EXPECT_NE(error_of([&] { make_backend(o); }).find("--dtype half is not supported"), std::string::npos);
  o.dtype = "float32";
  EXPECT_EQ(make_backend(o)->name(), "cpu");
#ifndef DSINFER_HAVE_CUDA
  o.device = DeviceKind::device_cuda;
  EXPECT_NE(error_of([&] { make_backend(o); }).find("this build has no CUDA support"), std::string::npos);
  o.device = DeviceKind::device_auto;
  o.dtype = "auto";
  EXPECT_EQ(make_backend(o)->name(), "cpu");
#endif
}

}  // namespace
}  // namespace dsi
