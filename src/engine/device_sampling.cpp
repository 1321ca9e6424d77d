#include "engine/device_sampling.h"

#include "engine/sampling_rows.h"

namespace dsi {

bool suits_device_sampling(const SamplingParams& p) { return !p.constraint && p.allowed_token_ids.empty(); }

sampling::SamplingRow plain_greedy_row(int32_t penalty_at) {
  sampling::SamplingRow r{};
  r.greedy = 1;
  r.inv_temperature = 1.0f;
  r.top_p_53 = uint64_t(1) << 53;
  r.repetition_penalty = 1.0f;
  r.n_logprobs = -1;
  r.penalty_begin = r.penalty_end = penalty_at;
  return r;
}

void sample_rows_on_device(ModelRunner& runner, std::span<const SampleInput> inputs, std::vector<GeneratedToken>& tokens,
                           std::vector<std::string>& errors) {
  const int64_t vocab = runner.config().vocab_size;
  const size_t n = inputs.size();
  tokens.resize(n);
  errors.resize(n);
  std::vector<sampling::SamplingRow> rows(n);
  std::vector<sampling::SamplingPenalty> penalties;
  for (size_t i = 0; i < n; ++i) {
    try {
      prepare_sampling_row(*inputs[i].params, *inputs[i].state, inputs[i].context, vocab, penalties, rows[i]);
    } catch (const std::exception& e) {
      errors[i] = e.what();
      // The row still takes its place in the launch; its result is dropped.
      rows[i] = plain_greedy_row(int32_t(penalties.size()));
    }
  }
  std::vector<sampling::SamplingResult> results(n);
  runner.sample_on_device(rows, penalties, results);
  for (size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) continue;
    try {
      tokens[i] = finish_sampling_row(results[i], *inputs[i].params, *inputs[i].state, vocab);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
}

}  // namespace dsi
