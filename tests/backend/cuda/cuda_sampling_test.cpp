// The GPU sampler (backend/cuda/sampling.h) against the CPU sampler (engine/sampler.h) on
// random batches: ties, -inf masks, NaN / +inf, one finite value, float's limits, tiny and
// large temperatures, top-k 1 with top-p < 1, min-p leaving few candidates, penalties and
// min_tokens masks. Both samplers share backend/sampling.h's arithmetic and integer masses, so
// the kept set and the token must be equal, not close: for every row the GPU keeps as many
// tokens as sampling_candidates with the same last one, draws sample_token's token for the same
// seed, leaves the state's stream where sample_token leaves it, and fails with sample_token's
// message. Logprobs: both round double(raw) - log_z to float; the log_z differ only by the
// order of a double sum of up to 2^17 terms <= 1 (relative error <= 2^17 * 2^-53, 1.5e-11) and
// the libraries' log, so they agree within 2^-23 |logprob| (one float rounding) + 2e-11.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/sampling.h"
#include "backend/cuda/stream.h"
#include "core/error.h"
#include "cuda_test_util.h"
#include "engine/sampler.h"
#include "engine/sampling_rows.h"

namespace dsi::cuda {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Row {
  std::vector<float> logits;
  SamplingParams p;
  std::vector<int32_t> prompt, output;
  std::vector<int64_t> eos;
};

template <class T>
T pick(std::mt19937_64& rng, std::initializer_list<T> options) {
  return *(options.begin() + std::ptrdiff_t(std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)));
}

Row random_row(std::mt19937_64& rng, int vocab) {
  Row c;
  std::uniform_int_distribution<int> token(0, vocab - 1);
  std::uniform_real_distribution<double> unit(0, 1);
  c.logits.resize(size_t(vocab));
  const int kind = std::uniform_int_distribution<int>(0, 7)(rng);
  std::normal_distribution<float> normal(0, pick(rng, {0.01f, 1.0f, 3.0f, 40.0f}));
  for (float& v : c.logits) {
    switch (kind) {
      case 0: v = normal(rng); break;                                                 // continuous
      case 1: v = float(std::uniform_int_distribution<int>(-2, 2)(rng)); break;       // many ties
      case 2: v = unit(rng) < 0.5 ? -kInf : normal(rng); break;                       // masked tokens
      case 3: v = -kInf; break;                                                       // one finite below
      case 4: v = pick(rng, {-FLT_MAX, FLT_MAX, 0.0f, -0.0f, 1e30f, -1e30f}); break;  // float's limits
      case 5: v = std::round(normal(rng) * 4) / 4; break;                             // ties among many values
      default: v = unit(rng) < 0.3 ? float(std::uniform_int_distribution<int>(0, 3)(rng)) : normal(rng);
    }
  }
  if (kind == 3) c.logits[size_t(token(rng))] = normal(rng);
  if (unit(rng) < 0.02) c.logits.assign(c.logits.size(), -kInf);  // errors: nothing finite
  if (unit(rng) < 0.03) c.logits[size_t(token(rng))] = NAN;
  if (unit(rng) < 0.02) c.logits[size_t(token(rng))] = kInf;
  if (unit(rng) < 0.01) c.logits.assign(c.logits.size(), NAN);

  SamplingParams& p = c.p;
  p.temperature = pick(rng, {0.0, 1e-6, 1e-4, 0.7, 1.0, 1.0, 5.0, 100.0});
  p.top_k = pick(rng, {-1, 0, 0, 1, 50, std::uniform_int_distribution<int>(1, vocab)(rng), vocab + 5});
  p.top_p = pick(rng, {1e-9, 0.5, 0.9, unit(rng) * 0.999 + 0.001, 1.0, 1.0});
  p.min_p = pick(rng, {0.0, 0.0, 0.05, 0.5, 0.99, 1.0, unit(rng)});
  if (unit(rng) < 0.1) p.top_k = 1, p.top_p = 0.3;
  p.repetition_penalty = pick(rng, {1.0, 1.0, 0.5, 1.3, 10.0, 1e-3});
  p.frequency_penalty = pick(rng, {0.0, 0.0, 0.6, -2.0, 2.0});
  p.presence_penalty = pick(rng, {0.0, 0.0, 0.5, -2.0, 2.0});
  p.max_tokens = 64;
  p.min_tokens = pick(rng, {0, 0, 2, 64});
  if (unit(rng) < 0.5) p.stop_token_ids = {token(rng)};
  p.seed = rng();
  p.logprobs = pick(rng, {-1, 0, 3, 20});
  const int n_context = pick(rng, {0, 4, 40});
  for (int i = std::uniform_int_distribution<int>(0, n_context)(rng); i > 0; --i) c.prompt.push_back(token(rng));
  for (int i = std::uniform_int_distribution<int>(0, n_context)(rng); i > 0; --i) c.output.push_back(token(rng));
  c.eos = {token(rng)};
  return c;
}

struct CpuOutcome {
  std::string error;  // empty: no error
  std::vector<int32_t> kept;
  GeneratedToken token{};
  double next_uniform = 0;  // the state's stream after the step
};

SamplerState state_of(const Row& c) {
  SamplerState st(c.p);
  for (int32_t t : c.output) st.record(t);
  return st;
}

CpuOutcome run_cpu(const Row& c) {
  CpuOutcome o;
  const SampleContext ctx{c.prompt, int(c.output.size()), c.eos};
  SamplerState st = state_of(c);
  try {
    std::vector<float> scratch = c.logits;
    o.kept = sampling_candidates(scratch, c.p, st, ctx);
    scratch = c.logits;
    o.token = sample_token(scratch, c.p, st, ctx);
    o.next_uniform = st.uniform();
  } catch (const Error& e) {
    o.error = e.what();
  }
  return o;
}

struct GpuBatch {
  std::vector<sampling::SamplingResult> results;
  std::vector<SamplerState> states;
};

// Prepares, uploads, samples and reads back one batch (all rows of one vocabulary).
GpuBatch run_gpu(const std::vector<Row>& rows, int vocab, cudaStream_t stream = nullptr) {
  GpuBatch b;
  std::vector<sampling::SamplingRow> params(rows.size());
  std::vector<sampling::SamplingPenalty> penalties;
  std::vector<float> logits;
  for (size_t r = 0; r < rows.size(); ++r) {
    b.states.push_back(state_of(rows[r]));
    const SampleContext ctx{rows[r].prompt, int(rows[r].output.size()), rows[r].eos};
    prepare_sampling_row(rows[r].p, b.states.back(), ctx, vocab, penalties, params[r]);
    logits.insert(logits.end(), rows[r].logits.begin(), rows[r].logits.end());
  }
  DeviceBuffer d_logits(logits.size() * 4), d_rows(params.size() * sizeof(params[0])),
      d_pen(std::max<size_t>(penalties.size(), 1) * sizeof(sampling::SamplingPenalty)),
      d_res(rows.size() * sizeof(sampling::SamplingResult));
  DSI_CUDA_CHECK(cudaMemcpy(d_logits.data(), logits.data(), logits.size() * 4, cudaMemcpyHostToDevice));
  DSI_CUDA_CHECK(cudaMemcpy(d_rows.data(), params.data(), d_rows.size(), cudaMemcpyHostToDevice));
  if (!penalties.empty())
    DSI_CUDA_CHECK(cudaMemcpy(d_pen.data(), penalties.data(), penalties.size() * sizeof(penalties[0]),
                              cudaMemcpyHostToDevice));
  DSI_CUDA_CHECK(cudaMemset(d_res.data(), 0xff, d_res.size()));  // poison: every field must be written
  sample({d_logits.as<float>(), int64_t(rows.size()), vocab, vocab, d_rows.as<sampling::SamplingRow>(),
          d_pen.as<sampling::SamplingPenalty>(), int64_t(penalties.size()), d_res.as<sampling::SamplingResult>()},
         stream);
  DSI_CUDA_CHECK(cudaDeviceSynchronize());
  b.results.resize(rows.size());
  DSI_CUDA_CHECK(cudaMemcpy(b.results.data(), d_res.data(), d_res.size(), cudaMemcpyDeviceToHost));
  return b;
}

std::string describe(const Row& c) {
  std::string s = "vocab " + std::to_string(c.logits.size()) + " temperature " + std::to_string(c.p.temperature) +
                  " top_k " + std::to_string(c.p.top_k) + " top_p " + std::to_string(c.p.top_p) + " min_p " +
                  std::to_string(c.p.min_p) + " rep " + std::to_string(c.p.repetition_penalty) + " freq " +
                  std::to_string(c.p.frequency_penalty) + " pres " + std::to_string(c.p.presence_penalty) +
                  " min_tokens " + std::to_string(c.p.min_tokens) + " n_output " + std::to_string(c.output.size()) +
                  " logprobs " + std::to_string(c.p.logprobs) + "\nlogits:";
  for (size_t i = 0; i < c.logits.size() && i < 24; ++i) s += " " + std::to_string(c.logits[i]);
  return s;
}

double logprob_tolerance(float cpu) { return std::ldexp(std::fabs(double(cpu)), -23) + 2e-11; }

// Compares one row; returns whether it was a cut (|K| < vocab) for the coverage counts.
void compare_row(const Row& c, const sampling::SamplingResult& res, SamplerState& gpu_state, int vocab,
                 int& n_errors, int& n_cut, int& n_drawn) {
  const CpuOutcome cpu = run_cpu(c);
  std::string gpu_error;
  GeneratedToken got{};
  try {
    got = finish_sampling_row(res, c.p, gpu_state, vocab);
  } catch (const Error& e) {
    gpu_error = e.what();
  }
  ASSERT_EQ(gpu_error, cpu.error);
  if (!cpu.error.empty()) {
    ++n_errors;
    return;
  }
  ASSERT_EQ(res.n_kept, int(cpu.kept.size()));
  ASSERT_EQ(res.last_kept, cpu.kept.back());
  ASSERT_EQ(got.token, cpu.token.token);
  n_cut += cpu.kept.size() < size_t(vocab);
  n_drawn += cpu.kept.size() > 1;
  EXPECT_EQ(gpu_state.uniform(), cpu.next_uniform) << "the state's stream advanced differently";
  if (c.p.logprobs >= 0) {
    EXPECT_NEAR(got.logprob, cpu.token.logprob, logprob_tolerance(cpu.token.logprob));
    ASSERT_EQ(got.top.size(), cpu.token.top.size());
    for (size_t i = 0; i < got.top.size(); ++i) {
      EXPECT_EQ(got.top[i].token, cpu.token.top[i].token) << "top " << i;
      EXPECT_NEAR(got.top[i].logprob, cpu.token.top[i].logprob, logprob_tolerance(cpu.token.top[i].logprob));
    }
  }
}

TEST(CudaSampling, EqualsTheCpuSamplerOnRandomBatches) {
  test::require_gpu();
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  SCOPED_TRACE("random seed " + std::to_string(seed));
  rng.seed(seed);
  int n_rows = 0, n_errors = 0, n_cut = 0, n_drawn = 0;
  const int vocabs[] = {1, 2, 3, 7, 31, 100, 300, 1000, 1025, 4097, 50000, 129280};
  for (int batch = 0; batch < 72; ++batch) {
    const int vocab = vocabs[batch % std::size(vocabs)];
    const int n = vocab >= 50000 ? 24 : 48;
    std::vector<Row> rows;
    for (int r = 0; r < n; ++r) rows.push_back(random_row(rng, vocab));
    GpuBatch g = run_gpu(rows, vocab);
    for (int r = 0; r < n; ++r) {
      SCOPED_TRACE("batch " + std::to_string(batch) + " row " + std::to_string(r) + ": " + describe(rows[size_t(r)]));
      compare_row(rows[size_t(r)], g.results[size_t(r)], g.states[size_t(r)], vocab, n_errors, n_cut, n_drawn);
      if (HasFatalFailure()) return;
      ++n_rows;
    }
  }
  // The generator covers what it claims to: failures, cuts, and real draws.
  EXPECT_GT(n_rows, 3000);
  EXPECT_GT(n_errors, 100);
  EXPECT_GT(n_cut, 1000);
  EXPECT_GT(n_drawn, 1000);
}

// Real-sized rows with the parameters servers use: a whole 129,280 vocabulary per row.
TEST(CudaSampling, EqualsTheCpuSamplerOnModelSizedRows) {
  test::require_gpu();
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  SCOPED_TRACE("random seed " + std::to_string(seed));
  rng.seed(seed);
  const int vocab = 129280;
  std::vector<Row> rows;
  for (int r = 0; r < 32; ++r) {
    Row c;
    std::normal_distribution<float> normal(0, pick(rng, {1.0f, 2.5f, 4.0f}));
    c.logits.resize(vocab);
    for (float& v : c.logits) v = normal(rng);
    c.p.seed = rng();
    c.p.temperature = pick(rng, {0.0, 0.6, 1.0, 1.5});
    c.p.top_k = pick(rng, {0, 20, 50, 1000});
    c.p.top_p = pick(rng, {1.0, 0.95, 0.8});
    c.p.min_p = pick(rng, {0.0, 0.0, 0.05});
    c.p.frequency_penalty = pick(rng, {0.0, 0.5});
    c.p.repetition_penalty = pick(rng, {1.0, 1.1});
    c.p.logprobs = pick(rng, {-1, 0, 5, 20});
    std::uniform_int_distribution<int> token(0, vocab - 1);
    for (int i = 0; i < 300; ++i) c.prompt.push_back(token(rng));
    for (int i = 0; i < 100; ++i) c.output.push_back(token(rng));
    c.p.max_tokens = 200;
    c.eos = {1};
    rows.push_back(std::move(c));
  }
  GpuBatch g = run_gpu(rows, vocab);
  int n_errors = 0, n_cut = 0, n_drawn = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    SCOPED_TRACE("row " + std::to_string(r) + ": " + describe(rows[r]));
    compare_row(rows[r], g.results[r], g.states[r], vocab, n_errors, n_cut, n_drawn);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(n_errors, 0);
}

TEST(CudaSampling, NonFiniteRowsFailWithTheCpuMessageAndTheOthersSample) {
  test::require_gpu();
  const int vocab = 5000;
  std::vector<Row> rows(4);
  for (Row& c : rows) {
    c.logits.assign(vocab, 0.5f);
    c.logits[42] = 3.0f;
    c.p.temperature = 0;
  }
  rows[0].logits[17] = NAN;
  rows[0].logits[900] = kInf;
  rows[1].logits[4999] = kInf;
  rows[2].logits.assign(vocab, -kInf);
  GpuBatch g = run_gpu(rows, vocab);
  auto message = [&](size_t r) {
    try {
      finish_sampling_row(g.results[r], rows[r].p, g.states[r], vocab);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(0), "the model produced non-finite logits: NaN at token 17 (of 5000)");
  EXPECT_EQ(message(1), "the model produced non-finite logits: +inf at token 4999 (of 5000)");
  EXPECT_EQ(message(2), "the model produced non-finite logits: every logit is -inf (of 5000)");
  EXPECT_EQ(message(3), "no error");
  EXPECT_EQ(g.results[3].token, 42);
  for (size_t r = 0; r < 3; ++r) EXPECT_EQ(message(r), run_cpu(rows[r]).error);
}

// The launch is capturable: a graph of it replays to the same results as the direct call.
TEST(CudaSampling, GraphReplayEqualsTheDirectLaunch) {
  test::require_gpu();
  std::mt19937_64 rng(7);
  const int vocab = 4096;
  std::vector<Row> rows;
  for (int r = 0; r < 16; ++r) rows.push_back(random_row(rng, vocab));
  const GpuBatch direct = run_gpu(rows, vocab);

  std::vector<sampling::SamplingRow> params(rows.size());
  std::vector<sampling::SamplingPenalty> penalties;
  std::vector<float> logits;
  std::vector<SamplerState> states;
  for (size_t r = 0; r < rows.size(); ++r) {
    states.push_back(state_of(rows[r]));
    prepare_sampling_row(rows[r].p, states.back(), {rows[r].prompt, int(rows[r].output.size()), rows[r].eos}, vocab,
                         penalties, params[r]);
    logits.insert(logits.end(), rows[r].logits.begin(), rows[r].logits.end());
  }
  Stream stream;
  DeviceBuffer d_logits(logits.size() * 4), d_rows(params.size() * sizeof(params[0])),
      d_pen(std::max<size_t>(penalties.size(), 1) * sizeof(penalties[0])),
      d_res(rows.size() * sizeof(sampling::SamplingResult));
  DSI_CUDA_CHECK(cudaMemcpy(d_rows.data(), params.data(), d_rows.size(), cudaMemcpyHostToDevice));
  if (!penalties.empty())
    DSI_CUDA_CHECK(cudaMemcpy(d_pen.data(), penalties.data(), penalties.size() * sizeof(penalties[0]),
                              cudaMemcpyHostToDevice));
  cudaGraph_t graph;
  DSI_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  sample({d_logits.as<float>(), int64_t(rows.size()), vocab, vocab, d_rows.as<sampling::SamplingRow>(),
          d_pen.as<sampling::SamplingPenalty>(), int64_t(penalties.size()), d_res.as<sampling::SamplingResult>()},
         stream.get());
  DSI_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
  cudaGraphExec_t exec;
  DSI_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 2; ++replay) {  // fresh logits each time: penalties change them in place
    DSI_CUDA_CHECK(cudaMemcpy(d_logits.data(), logits.data(), logits.size() * 4, cudaMemcpyHostToDevice));
    DSI_CUDA_CHECK(cudaMemset(d_res.data(), 0xff, d_res.size()));
    DSI_CUDA_CHECK(cudaGraphLaunch(exec, stream.get()));
    stream.synchronize();
    std::vector<sampling::SamplingResult> got(rows.size());
    DSI_CUDA_CHECK(cudaMemcpy(got.data(), d_res.data(), d_res.size(), cudaMemcpyDeviceToHost));
    for (size_t r = 0; r < rows.size(); ++r) {
      EXPECT_EQ(got[r].status, direct.results[r].status) << r;
      if (got[r].status == sampling::sampling_ok) {
        EXPECT_EQ(got[r].token, direct.results[r].token) << r;
        EXPECT_EQ(got[r].n_kept, direct.results[r].n_kept) << r;
      }
    }
  }
  DSI_CUDA_CHECK(cudaGraphExecDestroy(exec));
  DSI_CUDA_CHECK(cudaGraphDestroy(graph));
}

}  // namespace
}  // namespace dsi::cuda
