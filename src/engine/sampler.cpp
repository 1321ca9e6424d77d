#include "engine/sampler.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <iterator>
#include <limits>
#include <unordered_set>

#include "backend/sampling.h"
#include "core/error.h"
#include "engine/softmax_exp.h"

namespace dsi {

namespace {

using sampling::key_token;
using sampling::order_key;
using sampling::weight_of;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr double kGreedyTemperature = 1e-5;  // below it, sampling is greedy (as in vLLM)

// Step 2's penalties (see sampler.h); returns whether any value changed.
bool apply_penalties(std::span<float> logits, const SamplingParams& p, const SamplerState& state,
                     std::span<const int32_t> prompt) {
  bool changed = false;
  if (p.repetition_penalty != 1.0) {
    // Every token seen in the prompt or the output is made less likely (CTRL's penalty).
    const float r = float(p.repetition_penalty);
    std::unordered_set<int32_t> seen(prompt.begin(), prompt.end());
    for (auto& [t, n] : state.output_counts()) seen.insert(t);
    for (int32_t t : seen) logits[size_t(t)] = sampling::repetition_penalized(logits[size_t(t)], r);
    changed = !seen.empty();
  }
  for (auto& [t, offset] : token_offsets(p, state)) {
    logits[size_t(t)] = sampling::offset_penalized(logits[size_t(t)], offset);
    changed = true;
  }
  return changed;
}

// Steps 1 and 2 in place; returns the largest value left (finite).
float process(std::span<float> logits, const SamplingParams& p, const SamplerState& state, const SampleContext& ctx) {
  float max_value = check_logits(logits);
  bool changed = apply_penalties(logits, p, state, ctx.prompt);
  if (ctx.n_generated < p.min_tokens || !p.allowed_token_ids.empty() || !p.bad_words_ids.empty() || p.constraint) {
    for (int32_t t : masked_tokens(p, ctx, int64_t(logits.size()))) logits[size_t(t)] = kNegInf;
    changed = true;
  }
  if (changed) max_value = max_logit(logits);
  if (max_value == kNegInf) fail_all_masked(p);
  return max_value;
}

bool is_unfiltered(const SamplingParams& p) { return p.top_k <= 0 && p.top_p >= 1.0 && p.min_p <= 0; }

int32_t first_index_of(std::span<const float> v, float value) {
  return int32_t(std::find(v.begin(), v.end(), value) - v.begin());
}

// Step 4 in place: logits become s, and the result is q. The exp pass over the whole vocabulary
// is most of the cost of sampling. The span is this thread's buffer: valid until its next call.
std::span<const float> scale_and_exp(std::span<float> logits, float max_value, double temperature) {
  const float inv_t = float(1.0 / temperature);
  for (float& v : logits) v = (v - max_value) * inv_t;
  thread_local std::vector<float> q;  // one per sampling thread, reused every step
  q.resize(logits.size());
  softmax_exp(logits, 0.0f, q);
  return q;
}

// Top-p's cut of `keys` (a superset of K, in any order, holding every candidate better than
// the ones it misses): sorts the best-first prefix whose mass reaches `need` and returns its
// length. Only the head is ordered, in pieces growing fourfold (a peaked distribution reaches
// top_p within the first piece); every round moves `begin` forward by a whole piece, so the
// rounds are bounded whatever the sums do.
size_t top_p_prefix(std::vector<uint64_t>& keys, std::span<const float> q, uint64_t need) {
  uint64_t cum = 0;
  for (size_t begin = 0, piece = 64; begin < keys.size(); begin += piece, piece *= 4) {
    const size_t end = std::min(keys.size(), begin + piece);
    const auto first = keys.begin() + std::ptrdiff_t(begin), last = keys.begin() + std::ptrdiff_t(end);
    if (end < keys.size()) std::nth_element(first, last, keys.end());
    std::sort(first, last);
    for (size_t i = begin; i < end; ++i)
      if ((cum += weight_of(q[size_t(key_token(keys[i]))])) >= need) return i + 1;
    if (end == keys.size()) break;  // (and keeps `piece` from growing past any size)
  }
  return keys.size();  // (not reached: the whole list's mass is at least `need`)
}

// Candidates are bucketed by their order keys' top bits (the sign, exponent and first mantissa
// bits of s): the buckets follow the best-first order, so a cut's last bucket, found from a
// histogram, bounds what needs collecting and sorting. Exact: it only spares the rest.
constexpr int kBucketBits = 14;
constexpr size_t kBuckets = size_t(1) << kBucketBits;
size_t bucket_of(uint64_t key) { return size_t(key >> (64 - kBucketBits)); }
bool in_c(float q, double min_p) { return sampling::in_candidates(q, min_p); }

// The last bucket that can hold part of K: with top-k (cut_k), the one holding the top_k-th
// best of C; with top-p alone, the one where C's mass, best first, reaches top-p's need (the
// masses are exact integers). `total` gets C's mass.
size_t last_bucket(std::span<const float> s, std::span<const float> q, const SamplingParams& p, bool cut_k,
                   uint64_t& total) {
  if (!cut_k && !(p.top_p < 1.0)) return kBuckets - 1;
  thread_local std::vector<uint64_t> weight;  // per bucket: candidates (top-k) or their mass (top-p)
  weight.assign(kBuckets, 0);
  total = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (in_c(q[i], p.min_p)) {
      const uint64_t w = weight_of(q[i]);
      weight[bucket_of(order_key(s[i], 0))] += cut_k ? 1 : w;
      total += w;
    }
  const uint64_t target = cut_k ? uint64_t(p.top_k) : sampling::top_p_need(top_p_53(p), total);
  uint64_t cum = 0;
  size_t last = 0;
  for (; last + 1 < kBuckets; ++last)
    if ((cum += weight[last]) >= target) break;
  return last;
}

// Step 5: K as order keys, in no particular order. This thread's buffer, like scale_and_exp's.
std::span<const uint64_t> kept_keys(std::span<const float> s, std::span<const float> q, const SamplingParams& p) {
  thread_local std::vector<uint64_t> keys;
  keys.clear();
  const bool cut_k = p.top_k > 0 && size_t(p.top_k) < s.size();
  uint64_t total = 0;
  const size_t last = last_bucket(s, q, p, cut_k, total);
  for (size_t i = 0; i < s.size(); ++i)
    if (in_c(q[i], p.min_p))
      if (const uint64_t key = order_key(s[i], int32_t(i)); bucket_of(key) <= last) keys.push_back(key);
  assert(!keys.empty());  // the best token has q = 1
  if (p.top_k > 0 && size_t(p.top_k) < keys.size()) {
    std::nth_element(keys.begin(), keys.begin() + p.top_k, keys.end());
    keys.resize(size_t(p.top_k));
  }
  if (p.top_p < 1.0) {
    // The mass top-p takes its share of: C_k's when top-k cut (it holds all of C_k), else C's.
    if (cut_k) {
      total = 0;
      for (uint64_t k : keys) total += weight_of(q[size_t(key_token(k))]);
    }
    keys.resize(top_p_prefix(keys, q, sampling::top_p_need(top_p_53(p), total)));
  }
  return keys;
}

// Step 6: K's tokens in token order, the first whose cumulative mass passes the target.
int32_t draw(std::span<const float> q, std::span<const uint64_t> keys, double u) {
  thread_local std::vector<int32_t> tokens;
  tokens.clear();
  uint64_t total = 0;
  for (uint64_t k : keys) {
    tokens.push_back(key_token(k));
    total += weight_of(q[size_t(key_token(k))]);
  }
  std::sort(tokens.begin(), tokens.end());
  const uint64_t target = sampling::draw_target(sampling::unit_to_53(u), total);
  uint64_t cum = 0;
  for (int32_t t : tokens)
    if ((cum += weight_of(q[size_t(t)])) > target) return t;
  return tokens.back();  // (not reached: target < total)
}

// Step 6 when nothing is filtered: K is every token with q > 0, walked in token order without
// building the list.
int32_t draw_unfiltered(std::span<const float> q, double u) {
  uint64_t total = 0;
  for (float v : q) total += weight_of(v);
  const uint64_t target = sampling::draw_target(sampling::unit_to_53(u), total);
  uint64_t cum = 0;
  for (size_t t = 0; t < q.size(); ++t)
    if ((cum += weight_of(q[t])) > target) return int32_t(t);
  return int32_t(q.size()) - 1;  // (not reached: target < total)
}

// Raw log-softmax of the chosen token and the n_top best (ties: lower id first), before any
// processing. `raw` passed check_logits, so log_z is finite.
void fill_logprobs(std::span<const float> raw, int n_top, GeneratedToken& out) {
  const float max_value = max_logit(raw);
  thread_local std::vector<float> q;
  q.resize(raw.size());
  softmax_exp(raw, max_value, q);
  double sum = 0;
  for (float v : q) sum += v;
  const double log_z = double(max_value) + std::log(sum);
  out.logprob = float(double(raw[size_t(out.token)]) - log_z);
  if (n_top <= 0) return;
  // One pass keeping the best n_top in order: most tokens fail the first comparison.
  const size_t n = std::min(size_t(n_top), raw.size());
  std::vector<int32_t> best;
  best.reserve(n + 1);
  for (size_t i = 0; i < raw.size(); ++i) {
    const float v = raw[i];
    if (best.size() == n && !(v > raw[size_t(best.back())])) continue;
    size_t at = best.size();
    while (at > 0 && raw[size_t(best[at - 1])] < v) --at;  // after equal values: lower ids first
    best.insert(best.begin() + std::ptrdiff_t(at), int32_t(i));
    if (best.size() > n) best.pop_back();
  }
  for (int32_t t : best) out.top.push_back({t, float(double(raw[size_t(t)]) - log_z)});
}

}  // namespace

SamplerState::SamplerState(const SamplingParams& params)
    : rng_(params.seed ? *params.seed : std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32)) {}

double SamplerState::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

void validate_sampling(const SamplingParams& p, int64_t vocab_size) {
  if (vocab_size > sampling::kMaxVocab)
    fail("sampling: a vocabulary of {} is over the sampler's {} (its integer masses)", vocab_size, sampling::kMaxVocab);
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
  if (p.logprobs < -1 || p.logprobs > sampling::kMaxLogprobs)
    fail("logprobs must be in [0, {}], got {}", sampling::kMaxLogprobs, p.logprobs);
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= vocab_size) fail("stop_token_ids: {} is outside the vocabulary of {}", t, vocab_size);
  for (size_t i = 0; i < p.logit_bias.size(); ++i) {
    auto [t, bias] = p.logit_bias[i];
    if (t < 0 || t >= vocab_size) fail("logit_bias: token {} is outside the vocabulary of {}", t, vocab_size);
    if (!(bias >= -100 && bias <= 100)) fail("logit_bias: the bias of token {} must be in [-100, 100], got {}", t, bias);
    if (i > 0 && p.logit_bias[i - 1].first >= t) fail("logit_bias: tokens must be sorted and unique");
  }
  for (size_t i = 0; i < p.allowed_token_ids.size(); ++i) {
    int32_t t = p.allowed_token_ids[i];
    if (t < 0 || t >= vocab_size) fail("allowed_token_ids: {} is outside the vocabulary of {}", t, vocab_size);
    if (i > 0 && p.allowed_token_ids[i - 1] >= t) fail("allowed_token_ids: tokens must be sorted and unique");
  }
  for (const auto& word : p.bad_words_ids)
    for (int32_t t : word)
      if (t < 0 || t >= vocab_size) fail("bad_words: token {} is outside the vocabulary of {}", t, vocab_size);
}

float check_logits(std::span<const float> logits) {
  const LogitScan scan = scan_logits(logits);
  if (const size_t bad = scan.first_nan_or_inf; bad < logits.size())
    fail_non_finite_logits(std::isnan(logits[bad]) ? "NaN" : "+inf", int64_t(bad), int64_t(logits.size()));
  if (scan.max_value == kNegInf) fail_non_finite_logits(nullptr, 0, int64_t(logits.size()));
  return scan.max_value;
}

void fail_non_finite_logits(const char* what, int64_t token, int64_t vocab) {
  if (what == nullptr) fail("the model produced non-finite logits: every logit is -inf (of {})", vocab);
  fail("the model produced non-finite logits: {} at token {} (of {})", what, token, vocab);
}

void fail_all_masked(const SamplingParams& p) {
  if (p.constraint)
    fail("sampling: every token is masked (the structured-output grammar allows no token of the vocabulary here, "
         "or EOS and stop_token_ids are masked until min_tokens = {} tokens are generated)",
         p.min_tokens);
  if (!p.allowed_token_ids.empty() || !p.bad_words_ids.empty())
    fail("sampling: every token is masked (by allowed_token_ids / bad_words, and EOS and stop_token_ids until "
         "min_tokens = {} tokens are generated)",
         p.min_tokens);
  fail("sampling: every token is masked (EOS and stop_token_ids are masked until min_tokens = {} tokens are generated)",
       p.min_tokens);
}

std::vector<std::pair<int32_t, float>> token_offsets(const SamplingParams& p, const SamplerState& state) {
  std::vector<std::pair<int32_t, float>> out;
  if (p.frequency_penalty != 0 || p.presence_penalty != 0)
    for (auto& [t, n] : state.output_counts()) out.emplace_back(t, penalty_offset(p, n));
  if (p.logit_bias.empty()) return out;  // (unsorted is fine: one entry per token either way)
  std::sort(out.begin(), out.end());
  std::vector<std::pair<int32_t, float>> merged;
  merged.reserve(out.size() + p.logit_bias.size());
  size_t i = 0;
  for (auto [t, bias] : p.logit_bias) {
    while (i < out.size() && out[i].first < t) merged.push_back(out[i++]);
    float offset = i < out.size() && out[i].first == t ? out[i++].second : 0.0f;
    merged.emplace_back(t, offset - bias);  // a bias raises the logit: a negative offset
  }
  while (i < out.size()) merged.push_back(out[i++]);
  return merged;
}

std::vector<int32_t> masked_tokens(const SamplingParams& p, const SampleContext& ctx, int64_t vocab) {
  // The large parts (the complement of allowed_token_ids or of the grammar's tokens) are made
  // in token order; the few others are sorted and merged in, so no pass sorts the vocabulary.
  std::vector<int32_t> extra;
  if (ctx.n_generated < p.min_tokens) {
    for (int64_t e : ctx.eos_token_ids)
      if (e >= 0 && e < vocab) extra.push_back(int32_t(e));
    for (int32_t t : p.stop_token_ids) extra.push_back(t);
  }
  for (const auto& word : p.bad_words_ids) {
    if (word.empty()) continue;
    const size_t head = word.size() - 1;
    if (ctx.output.size() < head) continue;
    if (std::equal(word.begin(), word.end() - 1, ctx.output.end() - std::ptrdiff_t(head))) extra.push_back(word.back());
  }
  // One sorted list of the tokens outside `ok` (sorted), EOS kept where `eos_ok`.
  auto complement = [&](const std::vector<int32_t>& ok, bool eos_ok) {
    std::vector<int32_t> out;
    out.reserve(size_t(vocab) - std::min(ok.size(), size_t(vocab)));
    int32_t from = 0;
    auto gap = [&](int32_t to) {  // [from, to)
      for (int32_t t = from; t < to; ++t)
        if (!eos_ok || std::find(ctx.eos_token_ids.begin(), ctx.eos_token_ids.end(), t) == ctx.eos_token_ids.end())
          out.push_back(t);
    };
    for (int32_t t : ok) {
      gap(std::min(t, int32_t(vocab)));
      from = std::max(from, t + 1);
    }
    gap(int32_t(vocab));
    return out;
  };
  std::vector<int32_t> masked;
  auto merge_in = [&](std::vector<int32_t> part) {
    if (masked.empty()) {
      masked = std::move(part);
      return;
    }
    std::vector<int32_t> both;
    both.reserve(masked.size() + part.size());
    std::set_union(masked.begin(), masked.end(), part.begin(), part.end(), std::back_inserter(both));
    masked = std::move(both);
  };
  if (!p.allowed_token_ids.empty()) merge_in(complement(p.allowed_token_ids, false));
  if (p.constraint) {
    const TokenConstraint::Next next = p.constraint->next(ctx.output);
    merge_in(complement(next.tokens ? *next.tokens : std::vector<int32_t>{}, next.can_end));
  }
  std::sort(extra.begin(), extra.end());
  extra.erase(std::unique(extra.begin(), extra.end()), extra.end());
  merge_in(std::move(extra));
  return masked;
}

bool is_greedy(const SamplingParams& p) { return p.temperature < kGreedyTemperature; }

float penalty_offset(const SamplingParams& p, int count) {
  return float(std::fma(p.frequency_penalty, double(count), p.presence_penalty));
}

uint64_t top_p_53(const SamplingParams& p) { return sampling::unit_to_53(p.top_p); }

GeneratedToken sample_token(std::span<float> logits, const SamplingParams& p, SamplerState& state,
                            const SampleContext& ctx) {
  GeneratedToken out{};
  thread_local std::vector<float> raw;
  if (p.logprobs >= 0) raw.assign(logits.begin(), logits.end());
  const float max_value = process(logits, p, state, ctx);
  if (is_greedy(p)) {
    out.token = first_index_of(logits, max_value);
  } else {
    std::span<const float> q = scale_and_exp(logits, max_value, p.temperature);
    out.token = is_unfiltered(p) ? draw_unfiltered(q, state.uniform()) : draw(q, kept_keys(logits, q, p), state.uniform());
  }
  if (p.logprobs >= 0) fill_logprobs(raw, p.logprobs, out);
  state.record(out.token);
  return out;
}

std::vector<int32_t> sampling_candidates(std::span<float> logits, const SamplingParams& p, const SamplerState& state,
                                         const SampleContext& ctx) {
  const float max_value = process(logits, p, state, ctx);
  if (is_greedy(p)) return {first_index_of(logits, max_value)};
  std::span<const float> q = scale_and_exp(logits, max_value, p.temperature);
  std::span<const uint64_t> kept = kept_keys(logits, q, p);  // unfiltered: every token with q > 0
  std::vector<uint64_t> sorted(kept.begin(), kept.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<int32_t> tokens;
  for (uint64_t k : sorted) tokens.push_back(key_token(k));
  return tokens;
}

}  // namespace dsi
