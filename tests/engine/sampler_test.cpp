// Sampling rules from their definitions (OpenAI / vLLM semantics).
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <map>

#include "core/error.h"
#include "engine/softmax_exp.h"

namespace dsi {
namespace {

GeneratedToken draw(std::vector<float> logits, const SamplingParams& p, SamplerState& st,
                    std::vector<int32_t> prompt = {}, int n_generated = 0) {
  std::vector<int64_t> eos = {0};
  return sample_token(logits, p, st, {prompt, n_generated, eos});
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  SamplingParams p;
  p.temperature = 0;
  SamplerState st(p);
  EXPECT_EQ(draw({1, 5, 5, 2}, p, st).token, 1);
}

TEST(Sampler, SameSeedSameDraws) {
  SamplingParams p;
  p.seed = 42;
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i)));
  SamplerState a(p), b(p);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(draw(logits, p, a).token, draw(logits, p, b).token);
}

TEST(Sampler, DrawsFollowTheSoftmax) {
  SamplingParams p;
  p.seed = 1;
  SamplerState st(p);
  std::vector<float> logits = {0, std::log(3.0f)};  // probabilities 1/4 and 3/4
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += draw(logits, p, st).token;
  EXPECT_NEAR(double(ones) / n, 0.75, 0.015);
}

TEST(Sampler, TopKTopPAndMinPCutTheTail) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  for (int trial = 0; trial < 3; ++trial) {
    SamplingParams p;
    p.seed = 7;
    if (trial == 0) p.top_k = 2;     // keeps {0, 1}
    if (trial == 1) p.top_p = 0.75;  // 0.5 + 0.3 reaches 0.75: keeps {0, 1}
    if (trial == 2) p.min_p = 0.5;   // keeps p >= 0.25: {0, 1}
    SamplerState st(p);
    std::map<int32_t, int> seen;
    for (int i = 0; i < 2000; ++i) ++seen[draw(logits, p, st).token];
    EXPECT_EQ(seen.size(), 2u) << "trial " << trial;
    EXPECT_TRUE(seen.count(0) && seen.count(1)) << "trial " << trial;
  }
}

TEST(Sampler, PenaltiesFollowTheirDefinitions) {
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = -1;
  // Repetition penalty divides positive and multiplies negative logits of seen tokens.
  p.repetition_penalty = 2.0;
  SamplerState st(p);
  EXPECT_EQ(draw({3.0f, 2.0f, -1.0f}, p, st, {0}).token, 1);  // 3/2 = 1.5 < 2
  // Frequency and presence penalties subtract per generated occurrence.
  SamplingParams f;
  f.temperature = 0;
  f.frequency_penalty = 0.6;
  f.presence_penalty = 0.5;
  SamplerState sf(f);
  sf.record(0);
  sf.record(0);
  EXPECT_EQ(draw({2.0f, 0.5f}, f, sf).token, 1);  // 2 - 2 * 0.6 - 0.5 = 0.3 < 0.5
}

TEST(Sampler, MinTokensMasksEosAndStopTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.min_tokens = 2;
  p.stop_token_ids = {2};
  SamplerState st(p);
  EXPECT_EQ(draw({9, 1, 8}, p, st, {}, 0).token, 1);  // eos 0 and stop 2 are masked
  EXPECT_EQ(draw({9, 1, 8}, p, st, {}, 2).token, 0);
}

TEST(Sampler, LogprobsAreTheRawLogSoftmax) {
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = 2;
  p.repetition_penalty = 5;  // does not change reported logprobs
  SamplerState st(p);
  auto t = draw({1.0f, 3.0f, 2.0f}, p, st, {1});
  const double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].token, 1);
  EXPECT_NEAR(t.top[0].logprob, 3.0 - z, 1e-5);
  EXPECT_EQ(t.top[1].token, 2);
  EXPECT_NEAR(t.top[1].logprob, 2.0 - z, 1e-5);
  EXPECT_EQ(t.token, 2);  // the penalty moved the choice
  EXPECT_NEAR(t.logprob, 2.0 - z, 1e-5);
}

TEST(SoftmaxExp, WithinTwoUlpOfExpAndZeroBelowTheNormalRange) {
  std::vector<float> x;
  for (float v = -90.0f; v <= 0.0f; v += 3e-4f) x.push_back(v);
  x.push_back(0.0f);
  std::vector<float> e(x.size());
  softmax_exp(x, 0.0f, e);
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(double(x[i]));
    if (want < FLT_MIN) {
      EXPECT_LT(e[i], FLT_MIN) << "x = " << x[i];
      continue;
    }
    EXPECT_LE(std::abs(double(e[i]) - want), 2 * want * FLT_EPSILON / 2) << "x = " << x[i];
  }
  EXPECT_EQ(e.back(), 1.0f);
  // Shifted by the maximum; masked and NaN logits get probability 0.
  std::vector<float> logits = {3.0f, -INFINITY, NAN, 1.0f};
  EXPECT_EQ(max_logit(logits), 3.0f);
  std::vector<float> out(logits.size());
  softmax_exp(logits, max_logit(logits), out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_NEAR(out[3], std::exp(-2.0), 2e-7);
}

TEST(Sampler, InvalidParametersAreNamed) {
  auto message = [](SamplingParams p) {
    try {
      validate_sampling(p, 100);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SamplingParams p;
  p.top_p = 0;
  EXPECT_NE(message(p).find("top_p"), std::string::npos);
  p = {};
  p.max_tokens = 0;
  EXPECT_NE(message(p).find("max_tokens"), std::string::npos);
  p = {};
  p.temperature = -1;
  EXPECT_NE(message(p).find("temperature"), std::string::npos);
  p = {};
  p.stop_token_ids = {100};
  EXPECT_NE(message(p).find("stop_token_ids"), std::string::npos);
  p = {};
  p.logprobs = 21;
  EXPECT_NE(message(p).find("logprobs"), std::string::npos);
}

}  // namespace
}  // namespace dsi
