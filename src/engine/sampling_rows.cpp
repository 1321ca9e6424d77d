#include "engine/sampling_rows.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace dsi {

void prepare_sampling_row(const SamplingParams& p, SamplerState& state, const SampleContext& ctx, int64_t vocab,
                          std::vector<sampling::SamplingPenalty>& penalties, sampling::SamplingRow& row) {
  auto check_token = [&](int64_t t, const char* what) {
    if (t < 0 || t >= vocab) fail("sampling: {} token {} is outside the vocabulary of {}", what, t, vocab);
  };
  // token -> its entry; std::map keeps them sorted by token, one per token.
  std::map<int32_t, sampling::SamplingPenalty> entries;
  auto entry = [&](int32_t t) -> sampling::SamplingPenalty& {
    auto [it, fresh] = entries.try_emplace(t, sampling::SamplingPenalty{t, 0, 0.0f, 0.0f});
    return it->second;
  };
  if (p.repetition_penalty != 1.0) {
    for (int32_t t : ctx.prompt) check_token(t, "prompt");
    for (int32_t t : ctx.prompt) entry(t).ops |= sampling::apply_repetition;
    for (auto& [t, n] : state.output_counts()) entry(t).ops |= sampling::apply_repetition;
  }
  for (auto& [t, n] : state.output_counts()) check_token(t, "output");
  for (auto [t, offset] : token_offsets(p, state)) {  // frequency, presence and logit_bias
    check_token(t, "logit_bias");
    sampling::SamplingPenalty& e = entry(t);
    e.ops |= sampling::apply_offset;
    e.offset = offset;
  }
  if (ctx.n_generated < p.min_tokens || !p.allowed_token_ids.empty() || !p.bad_words_ids.empty() || p.constraint)
    for (int32_t t : masked_tokens(p, ctx, vocab)) {
      check_token(t, "masked");
      entry(t).ops |= sampling::apply_mask;
    }
  row = {};
  row.greedy = is_greedy(p) ? 1 : 0;
  row.inv_temperature = row.greedy ? 1.0f : float(1.0 / p.temperature);
  row.top_k = p.top_k > 0 && int64_t(p.top_k) < vocab ? p.top_k : 0;
  row.min_p = p.min_p > 0 ? p.min_p : 0.0;
  row.top_p_53 = p.top_p < 1.0 ? top_p_53(p) : uint64_t(1) << 53;
  row.repetition_penalty = float(p.repetition_penalty);
  row.n_logprobs = p.logprobs;
  row.min_tokens = p.min_tokens;
  row.penalty_begin = int32_t(penalties.size());
  for (auto& [t, e] : entries) penalties.push_back(e);
  row.penalty_end = int32_t(penalties.size());
  // sample_token draws one uniform on every non-greedy path (after steps 1-2, which end the
  // request when they fail, so drawing first changes nothing that is seen).
  row.uniform_53 = row.greedy ? 0 : sampling::unit_to_53(state.uniform());
}

GeneratedToken finish_sampling_row(const sampling::SamplingResult& r, const SamplingParams& p, SamplerState& state,
                                   int64_t vocab) {
  switch (r.status) {
    case sampling::sampling_ok: break;
    case sampling::sampling_nan: fail_non_finite_logits("NaN", r.bad_index, vocab);
    case sampling::sampling_pos_inf: fail_non_finite_logits("+inf", r.bad_index, vocab);
    case sampling::sampling_all_neg_inf: fail_non_finite_logits(nullptr, 0, vocab);
    case sampling::sampling_all_masked: fail_all_masked(p);
    default: fail("sampling: the device sampler returned an unknown status {}", r.status);
  }
  if (r.token < 0 || r.token >= vocab) fail("sampling: the device sampler returned token {} of {}", r.token, vocab);
  GeneratedToken out{};
  out.token = r.token;
  if (p.logprobs >= 0) {
    out.logprob = r.logprob;
    for (int i = 0; i < std::min(r.n_top, sampling::kMaxLogprobs); ++i)
      out.top.push_back({r.top_tokens[i], r.top_logprobs[i]});
  }
  state.record(out.token);
  return out;
}

}  // namespace dsi
