#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "core/error.h"
#include "engine/softmax_exp.h"

namespace dsi {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kMaxLogprobs = 20;

// The first maximum on ties (NaN ignored): the vectorised maximum, then its first place.
int32_t argmax(std::span<const float> v) {
  const float m = max_logit(v);
  const auto it = std::find(v.begin(), v.end(), m);
  return it == v.end() ? 0 : int32_t(it - v.begin());
}

// Each token's probability relative to the best, exp(logit - max), computed once, in float:
// this pass over the whole vocabulary is most of the cost of sampling. Tokens whose
// probability is 0 (masked, or below float's range) are never drawn. The span is this
// thread's buffer: valid until its next call.
std::span<const float> relative_probs(std::span<const float> scaled) {
  thread_local std::vector<float> buffer;  // one per sampling thread, reused every step
  buffer.resize(scaled.size());
  softmax_exp(scaled, max_logit(scaled), buffer);  // the best has 1
  return buffer;
}

// Raw log-softmax of the chosen token and the n best, before any processing.
void fill_logprobs(std::span<const float> logits, int n_top, GeneratedToken& out) {
  double sum = 0;
  for (float q : relative_probs(logits)) sum += q;
  const float log_z = max_logit(logits) + float(std::log(sum));
  out.logprob = logits[size_t(out.token)] - log_z;
  if (n_top <= 0) return;
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b); };
  const size_t n = std::min(size_t(n_top), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(n), ids.end(), better);
  for (size_t i = 0; i < n; ++i) out.top.push_back({ids[i], logits[size_t(ids[i])] - log_z});
}

void apply_penalties(std::span<float> logits, const SamplingParams& p, const SamplerState& state,
                     std::span<const int32_t> prompt) {
  if (p.repetition_penalty != 1.0) {
    // Every token seen in the prompt or the output is made less likely (CTRL's penalty).
    const float r = float(p.repetition_penalty);
    std::unordered_set<int32_t> seen(prompt.begin(), prompt.end());
    for (auto& [t, n] : state.output_counts()) seen.insert(t);
    for (int32_t t : seen) {
      float& v = logits[size_t(t)];
      v = v > 0 ? v / r : v * r;
    }
  }
  if (p.frequency_penalty != 0 || p.presence_penalty != 0)
    for (auto& [t, n] : state.output_counts())
      logits[size_t(t)] -= float(p.frequency_penalty * n + p.presence_penalty);
}

// The tokens kept by top-k, top-p and min-p. Only top-p needs an order, and then only of the
// few best tokens in a peaked distribution: the head is sorted in growing pieces until it
// holds the top_p mass.
std::vector<int32_t> filter(std::span<const float> scaled, std::span<const float> prob, const SamplingParams& p) {
  std::vector<int32_t> ids;
  ids.reserve(scaled.size());
  for (size_t i = 0; i < scaled.size(); ++i)
    if (prob[i] > 0) ids.push_back(int32_t(i));
  auto better = [&](int32_t a, int32_t b) {
    return scaled[size_t(a)] > scaled[size_t(b)] || (scaled[size_t(a)] == scaled[size_t(b)] && a < b);
  };
  if (p.top_k > 0 && size_t(p.top_k) < ids.size()) {
    std::nth_element(ids.begin(), ids.begin() + p.top_k, ids.end(), better);
    ids.resize(size_t(p.top_k));
  }
  if (p.min_p > 0) std::erase_if(ids, [&](int32_t t) { return prob[size_t(t)] < p.min_p; });
  if (p.top_p < 1.0) {
    double total = 0;
    for (int32_t t : ids) total += prob[size_t(t)];
    const double need = p.top_p * total;
    size_t sorted = 0, keep = ids.size();
    double cum = 0;
    for (size_t piece = 64; keep == ids.size() && sorted < ids.size(); piece *= 4) {
      const size_t end = std::min(ids.size(), sorted + piece);
      std::nth_element(ids.begin() + std::ptrdiff_t(sorted), ids.begin() + std::ptrdiff_t(end) - 1, ids.end(), better);
      std::sort(ids.begin() + std::ptrdiff_t(sorted), ids.begin() + std::ptrdiff_t(end), better);
      for (; sorted < end; ++sorted)
        if ((cum += prob[size_t(ids[sorted])]) >= need) {
          keep = sorted + 1;
          break;
        }
    }
    ids.resize(keep);
  }
  return ids;
}

// Draws a token with probability prob[t] / (sum over the candidates): the first candidate, in
// order, whose cumulative probability passes u times their total. Candidates: `ids`, or every
// token when `all` (the same draw as ids = every token with probability > 0, without the list).
int32_t draw(std::span<const float> prob, std::span<const int32_t> ids, bool all, double u) {
  double total = 0;
  if (all) {
    for (float q : prob) total += q;
  } else {
    for (int32_t t : ids) total += prob[size_t(t)];
  }
  if (!(total > 0)) fail("sampling: no token has a positive probability (are the logits finite?)");
  const double target = u * total;
  double cum = 0;
  if (all) {
    int32_t last = 0;
    for (size_t t = 0; t < prob.size(); ++t)
      if (prob[t] > 0) {
        last = int32_t(t);
        if ((cum += prob[t]) > target) return last;
      }
    return last;
  }
  for (int32_t t : ids)
    if ((cum += prob[size_t(t)]) > target) return t;
  return ids.back();
}

}  // namespace

SamplerState::SamplerState(const SamplingParams& params)
    : rng_(params.seed ? *params.seed : std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32)) {}

double SamplerState::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

void validate_sampling(const SamplingParams& p, int64_t vocab_size) {
  if (!(p.temperature >= 0) || p.temperature > 100) fail("temperature must be in [0, 100], got {}", p.temperature);
  if (!(p.top_p > 0 && p.top_p <= 1)) fail("top_p must be in (0, 1], got {}", p.top_p);
  if (p.top_k < -1) fail("top_k must be -1 (off), 0 (off) or positive, got {}", p.top_k);
  if (!(p.min_p >= 0 && p.min_p <= 1)) fail("min_p must be in [0, 1], got {}", p.min_p);
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2))
    fail("presence_penalty must be in [-2, 2], got {}", p.presence_penalty);
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2))
    fail("frequency_penalty must be in [-2, 2], got {}", p.frequency_penalty);
  if (!(p.repetition_penalty > 0 && p.repetition_penalty <= kMaxRepetitionPenalty))
    fail("repetition_penalty must be in (0, {}], got {}", kMaxRepetitionPenalty, p.repetition_penalty);
  if (p.max_tokens < 1) fail("max_tokens must be at least 1, got {}", p.max_tokens);
  if (p.min_tokens < 0 || p.min_tokens > p.max_tokens)
    fail("min_tokens must be in [0, max_tokens = {}], got {}", p.max_tokens, p.min_tokens);
  if (p.logprobs < -1 || p.logprobs > kMaxLogprobs) fail("logprobs must be in [0, {}], got {}", kMaxLogprobs, p.logprobs);
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= vocab_size) fail("stop_token_ids: {} is outside the vocabulary of {}", t, vocab_size);
}

GeneratedToken sample_token(std::span<float> logits, const SamplingParams& p, SamplerState& state,
                            const SampleContext& ctx) {
  GeneratedToken out{};
  std::vector<float> raw;
  if (p.logprobs >= 0) raw.assign(logits.begin(), logits.end());

  apply_penalties(logits, p, state, ctx.prompt);
  if (ctx.n_generated < p.min_tokens) {
    for (int64_t e : ctx.eos_token_ids)
      if (e >= 0 && e < int64_t(logits.size())) logits[size_t(e)] = kNegInf;
    for (int32_t t : p.stop_token_ids) logits[size_t(t)] = kNegInf;
  }
  if (p.temperature < 1e-5) {
    out.token = argmax(logits);
  } else {
    const float inv_t = float(1.0 / p.temperature);
    for (float& v : logits) v *= inv_t;
    std::span<const float> prob = relative_probs(logits);
    const bool all = p.top_k <= 0 && p.top_p >= 1.0 && p.min_p <= 0;
    const std::vector<int32_t> ids = all ? std::vector<int32_t>{} : filter(logits, prob, p);
    out.token = draw(prob, ids, all, state.uniform());
  }
  if (p.logprobs >= 0) fill_logprobs(raw, p.logprobs, out);
  state.record(out.token);
  return out;
}

}  // namespace dsi
