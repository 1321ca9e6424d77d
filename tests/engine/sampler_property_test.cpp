// The sampler against a plain reference of its definition (sampler.h, steps 1-5) over random
// logits (ties, -inf, NaN, +inf, a single finite value, values near float's limits) and random
// parameter combinations: it always returns, fails exactly when the definition says so, keeps
// exactly the reference's set, and draws from it.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "core/error.h"
#include "engine/sampler.h"
#include "engine/softmax_exp.h"

namespace dsi {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
__extension__ typedef unsigned __int128 u128;

struct Case {
  std::vector<float> logits;
  SamplingParams p;
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;  // tokens generated before (for the penalties)
  std::vector<int64_t> eos;
};

// The kept set, best first, straight from sampler.h's definition with full sorts and plain
// loops; nullopt where the definition says the request fails. The relative probabilities
// come from softmax_exp, the primitive tested on its own in sampler_test.cpp, so that this
// compares the selection rules, not two exp implementations.
std::optional<std::vector<int32_t>> reference_kept(const Case& c) {
  std::vector<float> l = c.logits;
  const SamplingParams& p = c.p;
  bool any_finite = false;
  for (float v : l) {
    if (std::isnan(v) || v == kInf) return std::nullopt;
    any_finite = any_finite || std::isfinite(v);
  }
  if (!any_finite) return std::nullopt;
  std::map<int32_t, int> counts;
  for (int32_t t : c.output) ++counts[t];
  auto clamp = [](float v) { return std::max(-FLT_MAX, std::min(FLT_MAX, v)); };
  if (p.repetition_penalty != 1.0) {
    std::set<int32_t> seen(c.prompt.begin(), c.prompt.end());
    for (auto& [t, n] : counts) seen.insert(t);
    const float r = float(p.repetition_penalty);
    for (int32_t t : seen)
      if (l[size_t(t)] != -kInf) l[size_t(t)] = clamp(l[size_t(t)] > 0 ? l[size_t(t)] / r : l[size_t(t)] * r);
  }
  // One offset per token: frequency and presence (when either is set) minus logit_bias.
  std::map<int32_t, float> offsets;
  if (p.frequency_penalty != 0 || p.presence_penalty != 0)
    for (auto& [t, n] : counts) offsets[t] = float(p.frequency_penalty * n + p.presence_penalty);
  for (auto [t, b] : p.logit_bias) offsets[t] = offsets[t] - b;
  for (auto& [t, off] : offsets)
    if (l[size_t(t)] != -kInf) l[size_t(t)] = clamp(l[size_t(t)] - off);
  if (int(c.output.size()) < p.min_tokens) {
    for (int64_t e : c.eos) l[size_t(e)] = -kInf;
    for (int32_t t : p.stop_token_ids) l[size_t(t)] = -kInf;
  }
  if (!p.allowed_token_ids.empty()) {
    std::set<int32_t> allowed(p.allowed_token_ids.begin(), p.allowed_token_ids.end());
    for (size_t i = 0; i < l.size(); ++i)
      if (!allowed.count(int32_t(i))) l[i] = -kInf;
  }
  for (const auto& w : p.bad_words_ids) {  // the word's last token, when the output ends with the rest
    const size_t head = w.size() - 1;
    if (c.output.size() >= head && std::equal(w.begin(), w.end() - 1, c.output.end() - std::ptrdiff_t(head)))
      l[size_t(w.back())] = -kInf;
  }
  float m = -kInf;
  for (float v : l) m = std::max(m, v);
  if (m == -kInf) return std::nullopt;
  if (p.temperature < 1e-5) {
    for (size_t i = 0; i < l.size(); ++i)
      if (l[i] == m) return std::vector<int32_t>{int32_t(i)};
  }
  std::vector<float> s(l.size()), q(l.size());
  for (size_t i = 0; i < l.size(); ++i) s[i] = (l[i] - m) * float(1.0 / p.temperature);
  softmax_exp(s, 0.0f, q);
  std::vector<int32_t> order(l.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[size_t(a)] > s[size_t(b)]; });
  std::vector<int32_t> kept;
  for (int32_t t : order)
    if (q[size_t(t)] > 0 && double(q[size_t(t)]) >= p.min_p) kept.push_back(t);
  if (p.top_k > 0 && size_t(p.top_k) < kept.size()) kept.resize(size_t(p.top_k));
  if (p.top_p < 1) {
    // Integer masses (sampler.h): w = floor(q * 2^43), need = ceil(top_p * total), at least 1.
    auto w = [&](int32_t t) { return uint64_t(std::ldexp(double(q[size_t(t)]), 43)); };
    uint64_t total = 0;
    for (int32_t t : kept) total += w(t);
    const uint64_t p53 = uint64_t(std::ldexp(p.top_p, 53));
    const u128 prod = u128(p53) * total;
    uint64_t need = uint64_t(prod >> 53) + ((prod & ((uint64_t(1) << 53) - 1)) != 0);
    need = std::max<uint64_t>(need, 1);
    uint64_t cum = 0;
    for (size_t i = 0; i < kept.size(); ++i) {
      cum += w(kept[i]);
      if (cum >= need) {
        kept.resize(i + 1);
        break;
      }
    }
  }
  return kept;
}

template <class T>
T pick(std::mt19937_64& rng, std::initializer_list<T> options) {
  std::uniform_int_distribution<size_t> i(0, options.size() - 1);
  return *(options.begin() + std::ptrdiff_t(i(rng)));
}

// logit_bias, allowed_token_ids and bad_words_ids on some cases: bad words sometimes end with
// the output's tail so that they bite.
template <class Rng>
void add_token_rules(Rng& rng, SamplingParams& p, const std::vector<int32_t>& output, int vocab) {
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_int_distribution<int32_t> token(0, vocab - 1);
  if (unit(rng) < 0.2) {
    std::map<int32_t, float> bias;
    for (int i = std::uniform_int_distribution<int>(1, 3)(rng); i > 0; --i)
      bias[token(rng)] = std::array<float, 5>{-100.0f, -1.5f, 0.5f, 7.0f, 100.0f}[size_t(rng() % 5)];
    p.logit_bias.assign(bias.begin(), bias.end());
  }
  if (unit(rng) < 0.1) {
    std::set<int32_t> allowed;
    for (int i = std::uniform_int_distribution<int>(1, 5)(rng); i > 0; --i) allowed.insert(token(rng));
    p.allowed_token_ids.assign(allowed.begin(), allowed.end());
  }
  if (unit(rng) < 0.2)
    for (int i = std::uniform_int_distribution<int>(1, 2)(rng); i > 0; --i) {
      std::vector<int32_t> word;
      const int len = std::uniform_int_distribution<int>(1, 3)(rng);
      if (unit(rng) < 0.5 && int(output.size()) >= len - 1)
        word.assign(output.end() - (len - 1), output.end());
      else
        for (int k = 1; k < len; ++k) word.push_back(token(rng));
      word.push_back(token(rng));
      p.bad_words_ids.push_back(std::move(word));
    }
}

Case random_case(std::mt19937_64& rng) {
  Case c;
  const int vocab = std::uniform_int_distribution<int>(1, 300)(rng);
  std::uniform_int_distribution<int> token(0, vocab - 1);
  std::uniform_real_distribution<double> unit(0, 1);
  c.logits.resize(size_t(vocab));
  const int kind = std::uniform_int_distribution<int>(0, 7)(rng);
  const float scale = pick(rng, {0.01f, 1.0f, 5.0f, 40.0f});
  std::normal_distribution<float> normal(0, scale);
  for (float& v : c.logits) {
    switch (kind) {
      case 0: v = normal(rng); break;                                                         // continuous
      case 1: v = float(std::uniform_int_distribution<int>(-2, 2)(rng)); break;               // many ties
      case 2: v = unit(rng) < 0.5 ? -kInf : normal(rng); break;                               // masked tokens
      case 3: v = -kInf; break;                                                               // one finite below
      case 4: v = pick(rng, {-FLT_MAX, FLT_MAX, 0.0f, -0.0f, 1e30f, -1e30f}); break;          // float's limits
      default: v = unit(rng) < 0.3 ? float(std::uniform_int_distribution<int>(0, 3)(rng)) : normal(rng);
    }
  }
  if (kind == 3) c.logits[size_t(token(rng))] = normal(rng);
  if (unit(rng) < 0.03) c.logits.assign(c.logits.size(), -kInf);  // nothing finite: an error
  if (unit(rng) < 0.05) c.logits[size_t(token(rng))] = NAN;       // errors
  if (unit(rng) < 0.03) c.logits[size_t(token(rng))] = kInf;
  if (unit(rng) < 0.01) c.logits.assign(c.logits.size(), NAN);

  SamplingParams& p = c.p;
  p.temperature = pick(rng, {0.0, 1e-6, 1e-4, 0.7, 1.0, 5.0, 100.0});
  p.top_k = pick(rng, {-1, 0, 1, std::uniform_int_distribution<int>(1, vocab)(rng), vocab + 5});
  p.top_p = pick(rng, {1e-9, 0.5, unit(rng) * 0.999 + 0.001, 1.0});
  p.min_p = pick(rng, {0.0, 0.1, 0.99, 1.0, unit(rng)});
  p.repetition_penalty = pick(rng, {1.0, 1.0, 0.5, 2.0, 10.0, 1e-3});
  p.frequency_penalty = pick(rng, {0.0, 0.0, 0.6, -2.0, 2.0});
  p.presence_penalty = pick(rng, {0.0, 0.0, 0.5, -2.0, 2.0});
  p.max_tokens = 8;
  p.min_tokens = pick(rng, {0, 0, 2, 8});
  if (unit(rng) < 0.5) p.stop_token_ids = {token(rng)};
  p.seed = rng();
  p.logprobs = pick(rng, {-1, 0, 3, 20});
  for (int i = std::uniform_int_distribution<int>(0, 4)(rng); i > 0; --i) c.prompt.push_back(token(rng));
  for (int i = std::uniform_int_distribution<int>(0, 4)(rng); i > 0; --i) c.output.push_back(token(rng));
  c.eos = {token(rng)};
  add_token_rules(rng, c.p, c.output, vocab);
  return c;
}

std::string describe(const Case& c) {
  std::string s = fmt::format("vocab {} temperature {} top_k {} top_p {} min_p {} rep {} freq {} pres {} min_tokens {} "
                              "n_output {}\nlogits:",
                              c.logits.size(), c.p.temperature, c.p.top_k, c.p.top_p, c.p.min_p,
                              c.p.repetition_penalty, c.p.frequency_penalty, c.p.presence_penalty, c.p.min_tokens,
                              c.output.size());
  for (size_t i = 0; i < c.logits.size() && i < 40; ++i) s += fmt::format(" {}", c.logits[i]);
  return s;
}

TEST(SamplerProperty, MatchesTheReferenceOnRandomLogitsAndParameters) {
  std::mt19937_64 rng(20261201);
  int n_errors = 0, n_greedy = 0, n_cut = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    const Case c = random_case(rng);
    SCOPED_TRACE(fmt::format("case {}: {}", iter, describe(c)));
    validate_sampling(c.p, int64_t(c.logits.size()));
    SamplerState state(c.p);
    for (int32_t t : c.output) state.record(t);
    const SampleContext ctx{c.prompt, int(c.output.size()), c.eos, c.output};
    const auto want = reference_kept(c);
    std::vector<float> scratch = c.logits;
    if (!want) {
      ++n_errors;
      EXPECT_THROW(sampling_candidates(scratch, c.p, state, ctx), Error);
      scratch = c.logits;
      EXPECT_THROW(sample_token(scratch, c.p, state, ctx), Error);
      continue;
    }
    n_greedy += c.p.temperature < 1e-5;
    const std::vector<int32_t> kept = sampling_candidates(scratch, c.p, state, ctx);
    ASSERT_EQ(kept, *want);
    n_cut += kept.size() < c.logits.size();
    scratch = c.logits;
    const GeneratedToken tok = sample_token(scratch, c.p, state, ctx);
    EXPECT_NE(std::find(kept.begin(), kept.end(), tok.token), kept.end()) << "drew " << tok.token;
    if (c.p.logprobs >= 0) {
      // The chosen token is never masked by the model, so its raw log-probability is finite,
      // unless a token rule forced a token whose float log-probability underflows (-inf).
      const bool rules = !c.p.logit_bias.empty() || !c.p.allowed_token_ids.empty() || !c.p.bad_words_ids.empty();
      EXPECT_TRUE((std::isfinite(tok.logprob) || (rules && tok.logprob == -kInf)) && tok.logprob <= 0) << tok.logprob;
      ASSERT_EQ(tok.top.size(), std::min(size_t(c.p.logprobs), c.logits.size()));
      for (size_t i = 1; i < tok.top.size(); ++i) EXPECT_GE(tok.top[i - 1].logprob, tok.top[i].logprob);
    }
  }
  // The generator covers what it claims to (failures, greedy, and actual cuts).
  EXPECT_GT(n_errors, 200);
  EXPECT_GT(n_greedy, 500);
  EXPECT_GT(n_cut, 1000);
}

// Draws repeat for a seed, and every kept token is drawn with about its share (the
// candidates' q renormalised): 2000 draws, 5 standard deviations.
TEST(SamplerProperty, DrawsFollowTheKeptDistribution) {
  std::mt19937_64 rng(5);
  for (int iter = 0; iter < 40; ++iter) {
    Case c = random_case(rng);
    std::normal_distribution<float> normal(0, 1.5f);
    for (float& v : c.logits) v = normal(rng);
    c.p.temperature = 1;
    c.p.repetition_penalty = 1;
    c.p.frequency_penalty = c.p.presence_penalty = 0;
    c.p.min_tokens = 0;
    c.p.logit_bias.clear();  // the shares below are of the raw logits
    c.p.allowed_token_ids.clear();
    c.p.bad_words_ids.clear();
    const auto kept = reference_kept(c);
    ASSERT_TRUE(kept);
    const float m = *std::max_element(c.logits.begin(), c.logits.end());
    std::map<int32_t, double> share;
    double total = 0;
    for (int32_t t : *kept) total += share[t] = std::exp(double(c.logits[size_t(t)] - m));
    SamplerState state(c.p);
    std::map<int32_t, int> seen;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
      std::vector<float> scratch = c.logits;
      ++seen[sample_token(scratch, c.p, state, {{}, 0, {}}).token];
    }
    for (auto& [t, k] : seen) EXPECT_TRUE(share.count(t)) << "token " << t << " is not kept";
    for (auto& [t, w] : share) {
      const double pr = w / total, sd = std::sqrt(pr * (1 - pr) / n);
      EXPECT_NEAR(double(seen[t]) / n, pr, 5 * sd + 1e-9) << "token " << t << ", case " << iter;
    }
  }
}

}  // namespace
}  // namespace dsi
