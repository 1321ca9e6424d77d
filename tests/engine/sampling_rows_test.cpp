// The host half of a device sampler (engine/sampling_rows.h), on any machine: the per-row
// records hold what sample_token would use, the state's stream advances exactly as
// sample_token advances it, and device statuses become sample_token's errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "engine/sampling_rows.h"

namespace dsi {
namespace {

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SamplingRows, TheStreamAdvancesAsSampleTokenAdvancesIt) {
  for (double temperature : {0.0, 1e-6, 0.7, 1.0}) {
    SamplingParams p;
    p.seed = 99;
    p.temperature = temperature;
    p.top_k = 3;
    SamplerState cpu(p), gpu(p);
    std::vector<float> logits = {0.1f, 2.0f, 1.5f, -1.0f, 0.3f};
    sample_token(logits, p, cpu, {{}, 0, {}});
    std::vector<sampling::SamplingPenalty> penalties;
    sampling::SamplingRow row;
    prepare_sampling_row(p, gpu, {{}, 0, {}}, 5, penalties, row);
    EXPECT_EQ(row.greedy, temperature < 1e-5 ? 1 : 0);
    EXPECT_EQ(cpu.uniform(), gpu.uniform()) << "temperature " << temperature;
    if (!row.greedy) {
      SamplerState fresh(p);
      EXPECT_EQ(row.uniform_53, sampling::unit_to_53(fresh.uniform()));  // the step's one uniform
    }
  }
}

TEST(SamplingRows, PenaltiesAreOneSortedEntryPerTokenWithTheirOperations) {
  SamplingParams p;
  p.repetition_penalty = 1.3;
  p.frequency_penalty = 0.5;
  p.presence_penalty = 0.2;
  p.min_tokens = 2;
  p.max_tokens = 8;
  p.stop_token_ids = {5};
  p.top_k = 10;  // >= vocab: off
  p.top_p = 0.9;
  p.logprobs = 3;
  SamplerState st(p);
  for (int32_t t : {1, 1, 5}) st.record(t);
  const std::vector<int32_t> prompt = {3, 1, 3};
  const std::vector<int64_t> eos = {7, 999};  // 999 is outside the vocabulary: skipped, as sample_token does
  std::vector<sampling::SamplingPenalty> penalties(2);  // entries of earlier rows stay
  sampling::SamplingRow row;
  prepare_sampling_row(p, st, {prompt, 1, eos}, 10, penalties, row);
  ASSERT_EQ(row.penalty_begin, 2);
  ASSERT_EQ(row.penalty_end, 6);
  using namespace sampling;
  EXPECT_EQ(penalties[2].token, 1);
  EXPECT_EQ(penalties[2].ops, uint32_t(apply_repetition | apply_offset));
  EXPECT_EQ(penalties[2].offset, float(0.5 * 2 + 0.2));
  EXPECT_EQ(penalties[3].token, 3);
  EXPECT_EQ(penalties[3].ops, uint32_t(apply_repetition));
  EXPECT_EQ(penalties[4].token, 5);
  EXPECT_EQ(penalties[4].ops, uint32_t(apply_repetition | apply_offset | apply_mask));
  EXPECT_EQ(penalties[4].offset, float(0.5 + 0.2));
  EXPECT_EQ(penalties[5].token, 7);
  EXPECT_EQ(penalties[5].ops, uint32_t(apply_mask));
  EXPECT_EQ(row.top_k, 0);
  EXPECT_EQ(row.top_p_53, uint64_t(std::ldexp(0.9, 53)));
  EXPECT_EQ(row.repetition_penalty, 1.3f);
  EXPECT_EQ(row.inv_temperature, 1.0f);
  EXPECT_EQ(row.n_logprobs, 3);
  // min_tokens reached: no masks.
  std::vector<sampling::SamplingPenalty> later;
  prepare_sampling_row(p, st, {prompt, 2, eos}, 10, later, row);
  for (auto& e : later) EXPECT_EQ(e.ops & apply_mask, 0u) << e.token;
}

TEST(SamplingRows, BadTokensAndDeviceStatusesBecomeErrors) {
  SamplingParams p;
  p.repetition_penalty = 1.2;
  p.min_tokens = 1;
  SamplerState st(p);
  std::vector<sampling::SamplingPenalty> penalties;
  sampling::SamplingRow row;
  const std::vector<int32_t> prompt = {4, 12};
  EXPECT_EQ(error_of([&] { prepare_sampling_row(p, st, {prompt, 0, {}}, 10, penalties, row); }),
            "sampling: prompt token 12 is outside the vocabulary of 10");
  sampling::SamplingResult r{};
  r.status = sampling::sampling_nan;
  r.bad_index = 17;
  EXPECT_EQ(error_of([&] { finish_sampling_row(r, p, st, 100); }),
            "the model produced non-finite logits: NaN at token 17 (of 100)");
  r.status = sampling::sampling_pos_inf;
  EXPECT_EQ(error_of([&] { finish_sampling_row(r, p, st, 100); }),
            "the model produced non-finite logits: +inf at token 17 (of 100)");
  r.status = sampling::sampling_all_neg_inf;
  EXPECT_EQ(error_of([&] { finish_sampling_row(r, p, st, 100); }),
            "the model produced non-finite logits: every logit is -inf (of 100)");
  r.status = sampling::sampling_all_masked;
  EXPECT_NE(error_of([&] { finish_sampling_row(r, p, st, 100); }).find("every token is masked"), std::string::npos);
  r.status = sampling::sampling_ok;
  r.token = 100;
  EXPECT_EQ(error_of([&] { finish_sampling_row(r, p, st, 100); }), "sampling: the device sampler returned token 100 of 100");
  r.token = 6;
  r.logprob = -0.25f;
  r.n_top = 1;
  r.top_tokens[0] = 6;
  r.top_logprobs[0] = -0.25f;
  p.logprobs = 1;
  const GeneratedToken t = finish_sampling_row(r, p, st, 100);
  EXPECT_EQ(t.token, 6);
  EXPECT_EQ(t.logprob, -0.25f);
  ASSERT_EQ(t.top.size(), 1u);
  EXPECT_EQ(st.output_counts().at(6), 1);  // recorded, for the next step's penalties
}

}  // namespace
}  // namespace dsi
