#pragma once
// Random sampling cases (logits and parameters) and the comparison of a device sampler's
// result with the CPU sampler's, shared by the GPU test (cuda/cuda_sampling_test.cpp) and the
// kernel's host emulation (sampling_kernel_emulated_test.cpp). The rules they check: the kept
// set and the token equal the CPU's (shared arithmetic, integer masses), the state's stream
// advances as sample_token advances it, errors carry sample_token's message; logprobs within
// 2^-23 |logprob| (one float rounding) + 2e-11 (the double log-sum's order: up to 2^17 terms
// <= 1, relative error <= 2^17 * 2^-53 = 1.5e-11).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <set>
#include <random>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "core/error.h"
#include "engine/sampler.h"
#include "engine/sampling_rows.h"

namespace dsi::sampling_test {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Row {
  std::vector<float> logits;
  SamplingParams p;
  std::vector<int32_t> prompt, output;
  std::vector<int64_t> eos;
};

template <class T>
inline T pick(std::mt19937_64& rng, std::initializer_list<T> options) {
  return *(options.begin() + std::ptrdiff_t(std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)));
}

inline Row random_row(std::mt19937_64& rng, int vocab) {
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
  // Token rules (logit_bias, allowed_token_ids, bad_words_ids) on some rows.
  if (unit(rng) < 0.2) {
    std::map<int32_t, float> bias;
    for (int i = std::uniform_int_distribution<int>(1, 3)(rng); i > 0; --i)
      bias[token(rng)] = pick(rng, {-100.0f, -1.5f, 0.5f, 7.0f, 100.0f});
    p.logit_bias.assign(bias.begin(), bias.end());
  }
  if (unit(rng) < 0.1) {
    std::set<int32_t> allowed;
    for (int i = std::uniform_int_distribution<int>(1, 5)(rng); i > 0; --i) allowed.insert(token(rng));
    p.allowed_token_ids.assign(allowed.begin(), allowed.end());
  }
  if (unit(rng) < 0.2) {
    const int len = std::uniform_int_distribution<int>(1, 3)(rng);
    std::vector<int32_t> word;
    if (unit(rng) < 0.5 && int(c.output.size()) >= len - 1) word.assign(c.output.end() - (len - 1), c.output.end());
    else
      for (int k = 1; k < len; ++k) word.push_back(token(rng));
    word.push_back(token(rng));
    p.bad_words_ids.push_back(std::move(word));
  }
  return c;
}

struct CpuOutcome {
  std::string error;  // empty: no error
  std::vector<int32_t> kept;
  GeneratedToken token{};
  double next_uniform = 0;  // the state's stream after the step
};

inline SamplerState state_of(const Row& c) {
  SamplerState st(c.p);
  for (int32_t t : c.output) st.record(t);
  return st;
}

inline CpuOutcome run_cpu(const Row& c) {
  CpuOutcome o;
  const SampleContext ctx{c.prompt, int(c.output.size()), c.eos, c.output};
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

// The rows' records and penalty lists as prepare_sampling_row makes them, with the states.
struct Prepared {
  std::vector<sampling::SamplingRow> rows;
  std::vector<sampling::SamplingPenalty> penalties;
  std::vector<float> logits;  // [n_rows, vocab]
  std::vector<SamplerState> states;
};
inline Prepared prepare(const std::vector<Row>& rows, int vocab) {
  Prepared b;
  b.rows.resize(rows.size());
  b.states.reserve(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    b.states.push_back(state_of(rows[r]));
    const SampleContext ctx{rows[r].prompt, int(rows[r].output.size()), rows[r].eos, rows[r].output};
    prepare_sampling_row(rows[r].p, b.states.back(), ctx, vocab, b.penalties, b.rows[r]);
    b.logits.insert(b.logits.end(), rows[r].logits.begin(), rows[r].logits.end());
  }
  return b;
}

inline std::string describe(const Row& c) {
  std::string s = fmt::format(
      "vocab {} temperature {} top_k {} top_p {} min_p {} rep {} freq {} pres {} min_tokens {} n_output {} "
      "logprobs {}\nlogits:",
      c.logits.size(), c.p.temperature, c.p.top_k, c.p.top_p, c.p.min_p, c.p.repetition_penalty,
      c.p.frequency_penalty, c.p.presence_penalty, c.p.min_tokens, c.output.size(), c.p.logprobs);
  for (size_t i = 0; i < c.logits.size() && i < 24; ++i) s += fmt::format(" {}", c.logits[i]);
  return s;
}

inline double logprob_tolerance(float cpu) { return std::ldexp(std::fabs(double(cpu)), -23) + 2e-11; }

// Compares one row; returns whether it was a cut (|K| < vocab) for the coverage counts.
inline void compare_row(const Row& c, const sampling::SamplingResult& res, SamplerState& gpu_state, int vocab,
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
    auto near = [](float a, float b) {  // -inf (a masked token among the top N) only equals itself
      return std::isinf(b) ? a == b : std::fabs(double(a) - double(b)) <= logprob_tolerance(b);
    };
    EXPECT_TRUE(near(got.logprob, cpu.token.logprob)) << got.logprob << " vs " << cpu.token.logprob;
    ASSERT_EQ(got.top.size(), cpu.token.top.size());
    for (size_t i = 0; i < got.top.size(); ++i) {
      EXPECT_EQ(got.top[i].token, cpu.token.top[i].token) << "top " << i;
      EXPECT_TRUE(near(got.top[i].logprob, cpu.token.top[i].logprob))
          << "top " << i << ": " << got.top[i].logprob << " vs " << cpu.token.top[i].logprob;
    }
  }
}

}  // namespace dsi::sampling_test
