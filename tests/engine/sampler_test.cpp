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
  // Masked while fewer than min_tokens were generated: for the 1st and 2nd token, not the 3rd.
  EXPECT_EQ(draw({9, 1, 8}, p, st, {}, 0).token, 1);  // eos 0 and stop 2 are masked
  EXPECT_EQ(draw({9, 1, 8}, p, st, {}, 1).token, 1);
  EXPECT_EQ(draw({9, 1, 8}, p, st, {}, 2).token, 0);
  p.stop_token_ids = {};
  EXPECT_EQ(draw({1, 9, 8}, p, st, {}, 1).token, 1);
  EXPECT_EQ(draw({9, 1, 8}, p, st, {}, 1).token, 2);
}

TEST(Sampler, LogitBiasAllowedTokensAndBadWords) {
  SamplingParams p;
  p.temperature = 0;
  SamplerState st(p);
  p.logit_bias = {{0, 10.0f}};  // 1 + 10 beats 9
  EXPECT_EQ(draw({1, 9, 8}, p, st).token, 0);
  p.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(draw({1, 9, 8}, p, st).token, 2);
  p.logit_bias = {};
  p.allowed_token_ids = {0, 2};
  EXPECT_EQ(draw({1, 9, 8}, p, st).token, 2);
  p.allowed_token_ids = {};
  // A bad word's last token is masked only after its other tokens ended the output.
  p.bad_words_ids = {{5, 1}};
  std::vector<float> l = {0, 9, 8, 0, 0, 0};
  std::vector<int64_t> eos = {0};
  std::vector<int32_t> out = {3, 5};
  std::vector<float> scratch = l;
  EXPECT_EQ(sample_token(scratch, p, st, {{}, 2, eos, out}).token, 2);
  out = {5, 3};
  scratch = l;
  EXPECT_EQ(sample_token(scratch, p, st, {{}, 2, eos, out}).token, 1);
  p.bad_words_ids = {{1}};  // one token: always masked
  EXPECT_EQ(draw({1, 9, 8}, p, st).token, 2);
  p.bad_words_ids = {};
  p.allowed_token_ids = {1};
  p.logit_bias = {{1, -100.0f}};  // still the only one allowed
  EXPECT_EQ(draw({1, 9, 8}, p, st).token, 1);
  p.stop_token_ids = {1};
  p.min_tokens = 1;
  EXPECT_THROW(draw({1, 9, 8}, p, st), Error);  // nothing left: the error names the masks
}

// Termination reproducers from issue 9: the old top-p loop spun forever when the candidates
// left by top-k or min-p were all needed to reach top_p (its "found" sentinel was the list's
// length). Each draw must return, and from the kept set.
TEST(Sampler, TopKOneWithTopPBelowOneTerminates) {
  std::vector<float> logits(1000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i) * 0.7));
  const int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (double top_p : {0.9, 0.5, 1e-9}) {
    SamplingParams p;
    p.seed = 3;
    p.top_k = 1;
    p.top_p = top_p;
    SamplerState st(p);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(draw(logits, p, st).token, best) << "top_p " << top_p;
  }
}

TEST(Sampler, MinPLeavingFewCandidatesWithTopPTerminates) {
  // Relative probabilities 1, 0.6, 0.3, 0.1, then a tail; min_p 0.2 keeps the first three (mass
  // 1.9) and top_p 0.95 needs all three of them (1.805).
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  for (int i = 0; i < 200; ++i) logits.push_back(std::log(0.0001f));
  SamplingParams p;
  p.seed = 11;
  p.min_p = 0.2;
  p.top_p = 0.95;
  SamplerState st(p);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 2000; ++i) ++seen[draw(logits, p, st).token];
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_TRUE(seen.count(0) && seen.count(1) && seen.count(2));
}

// Non-finite logits fail the request on every path with a message naming the token; they never
// produce a token (the old greedy path returned token 0 for all-NaN logits).
TEST(Sampler, NonFiniteLogitsFailOnEveryPath) {
  auto message = [](std::vector<float> logits, SamplingParams p) {
    SamplerState st(p);
    try {
      const int32_t t = draw(std::move(logits), p, st).token;
      return fmt::format("no error: drew {}", t);
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  SamplingParams greedy, random, filtered;
  greedy.temperature = 0;
  random.seed = filtered.seed = 1;
  filtered.top_k = 2;
  filtered.top_p = 0.5;
  filtered.min_p = 0.1;
  for (const SamplingParams& p : {greedy, random, filtered}) {
    SCOPED_TRACE(fmt::format("temperature {} top_k {}", p.temperature, p.top_k));
    EXPECT_NE(message({NAN, NAN, NAN}, p).find("NaN at token 0 (of 3)"), std::string::npos) << message({NAN, NAN, NAN}, p);
    EXPECT_NE(message({1, 2, NAN, 0}, p).find("NaN at token 2"), std::string::npos) << message({1, 2, NAN, 0}, p);
    EXPECT_NE(message({1, INFINITY, 0}, p).find("+inf at token 1"), std::string::npos) << message({1, INFINITY, 0}, p);
    EXPECT_NE(message({-INFINITY, -INFINITY}, p).find("every logit is -inf"), std::string::npos);
    // -inf alone is a mask: legal, and never drawn.
    EXPECT_EQ(message({-INFINITY, 2, -INFINITY}, p), "no error: drew 1");
  }
  // Masks that leave nothing (EOS 0 is the only finite token and min_tokens is not reached).
  SamplingParams p = greedy;
  p.min_tokens = 1;
  EXPECT_NE(message({3, -INFINITY}, p).find("every token is masked"), std::string::npos) << message({3, -INFINITY}, p);
}

// Penalties and temperature cannot overflow finite logits into +inf or NaN.
TEST(Sampler, ExtremeFiniteLogitsStayFinite) {
  SamplingParams p;
  p.seed = 2;
  p.temperature = 1e-4;
  p.repetition_penalty = 1e-3;  // divides the seen token's positive logit by 1e-3
  SamplerState st(p);
  std::vector<float> logits = {FLT_MAX, -FLT_MAX, 1e38f};
  // 1e38 / 1e-3 saturates at FLT_MAX: tokens 0 and 2 tie as the best, equally likely; token 1
  // is 2 * FLT_MAX below them (-inf after the shift, probability 0).
  std::map<int32_t, int> seen;
  for (int i = 0; i < 200; ++i) ++seen[draw(logits, p, st, {2}).token];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[0], 50);
  EXPECT_GT(seen[2], 50);
  // top_p 0.4 needs one of the two tied (mass 0.8 of 2); the tie goes to the lower id.
  p.top_p = 0.4;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(draw(logits, p, st, {2}).token, 0);
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

// The contract's scan finds the first NaN (either sign) or +inf wherever it lies (in the
// vectorised lanes, at block edges, in the tail), never flags -inf, and gives the maximum.
TEST(SoftmaxExp, ScanFindsTheFirstNanOrInf) {
  std::vector<float> x(2000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::cos(double(i)));
  x[7] = -INFINITY;
  x[1234] = 5.0f;
  LogitScan scan = scan_logits(x);
  EXPECT_EQ(scan.first_nan_or_inf, x.size());
  EXPECT_EQ(scan.max_value, 5.0f);
  for (size_t at : {size_t(0), size_t(15), size_t(511), size_t(512), size_t(1000), size_t(1999)})
    for (float bad : {NAN, -NAN, INFINITY}) {
      std::vector<float> y = x;
      y[at] = bad;
      if (at + 1 < y.size()) y[y.size() - 1] = NAN;  // only the first counts
      EXPECT_EQ(scan_logits(y).first_nan_or_inf, at) << "at " << at << " value " << bad;
    }
  EXPECT_EQ(scan_logits(std::vector<float>{}).first_nan_or_inf, 0u);
  EXPECT_EQ(scan_logits(std::vector<float>(3, -INFINITY)).max_value, -INFINITY);
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
