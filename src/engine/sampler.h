#pragma once
// Token choice from one row of logits: penalties, temperature, top-k, min-p, top-p, seeded
// randomness, and the raw log-probabilities the API reports (computed before any processing,
// as vLLM does by default). docs/design/engine.md ("Sampling") has the same rules.
//
// The steps, in order, for one row `l` of logits ([vocab]):
//  1. Contract (check_logits): every l[i] is finite or -inf (-inf: masked), and at least one is
//     finite. NaN or +inf anywhere fails the request (an Error naming the token); so does an
//     all -inf row. Every backend's sampler enforces this same contract.
//  2. Penalties on seen tokens (repetition on prompt and output, then one offset per token:
//     frequency and presence on the output minus the token's logit_bias, as one float; finite
//     values saturate at +-FLT_MAX, -inf stays -inf), then the masks (-inf): EOS and stop tokens
//     while fewer than min_tokens tokens have been generated, every token outside
//     allowed_token_ids, and the last token of each bad word whose other tokens end the output.
//     If nothing finite is left, the request fails ("every token is masked").
//  3. Greedy (temperature < 1e-5): the first index of the largest value. Done.
//  4. Temperature, in float: s[i] = (l[i] - max l) * float(1 / temperature), so s <= 0 and the
//     best tokens have s = 0 (shifting first means no finite logit can overflow).
//     q[i] = softmax_exp(s)[i]: the probability relative to the best (1 for the best, 0 for
//     masked tokens and those below float's normal range).
//  5. The kept set K, with "best first" meaning larger s first, lower token id first on equal s
//     (a strict total order, so every cut below is a prefix of it and ties at a cut go to the
//     lower token id):
//       C  = tokens with q > 0 and q >= min_p (min-p is relative to the best token, whose q is
//            1, so it is never cut; min_p 1 keeps exactly the tokens tied with the best)
//       Ck = the first top_k of C, best first (all of C when top_k <= 0 or top_k >= |C|)
//       K  = the shortest best-first prefix of Ck whose mass reaches ceil(top_p * mass(Ck)) (at
//            least 1); all of Ck when top_p = 1. It holds at least one token.
//     Masses are exact integers: token t weighs w[t] = floor(q[t] * 2^43), and a set's mass is
//     the sum of its weights (backend/sampling.h: exact in any order, so a GPU's parallel sums
//     equal these serial ones and every backend keeps and draws the same tokens for a seed).
//     min-p and top-k both keep a best-first prefix, so their order does not matter; top-p's
//     mass is that of what they kept (as in vLLM, which applies min-p and top-k before top-p).
//  6. A draw: token t in K with probability w[t] / mass(K), from one uniform u of the state's
//     stream (drawn whenever the path is not greedy): with u in 2^-53 units, the first token of
//     K in token-id order whose cumulative weight exceeds floor(u * mass(K)).
// Every step is a bounded pass or a sort of a bounded list: no loop waits for a sum to reach a
// threshold, so every parameter combination terminates.
#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/request.h"

namespace dsi {

// Per-sequence sampling state: its random stream and the counts its penalties need.
class SamplerState {
 public:
  explicit SamplerState(const SamplingParams& params);
  void record(int32_t token) { ++output_counts_[token]; }
  double uniform();  // in [0, 1)
  const std::unordered_map<int32_t, int>& output_counts() const { return output_counts_; }

 private:
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int> output_counts_;
};

// Checks parameter ranges; throws Error naming the parameter.
void validate_sampling(const SamplingParams& p, int64_t vocab_size);

// Step 1's contract on a row of logits as the model produced it; returns its largest value.
// Throws Error: "the model produced non-finite logits: NaN at token 17 (of 129280)", "+inf at
// token ...", or "every logit is -inf". One vectorised pass. Any thread.
float check_logits(std::span<const float> logits);

// Pieces of the rules that backends' samplers share (engine/sampling_rows.h uses them).
bool is_greedy(const SamplingParams& p);                   // temperature < 1e-5: no draw
float penalty_offset(const SamplingParams& p, int count);  // float(frequency * count + presence)
uint64_t top_p_53(const SamplingParams& p);                // top_p in 2^-53 units
// The errors of steps 1 and 2, with check_logits' and sample_token's messages. `what`: "NaN",
// "+inf", or null for an all -inf row.
[[noreturn]] void fail_non_finite_logits(const char* what, int64_t token, int64_t vocab);
[[noreturn]] void fail_all_masked(const SamplingParams& p);

struct SampleContext {
  std::span<const int32_t> prompt;
  int n_generated;                         // tokens generated before this one
  std::span<const int64_t> eos_token_ids;  // masked (with stop_token_ids) before min_tokens
  std::span<const int32_t> output{};       // the tokens generated so far (bad_words); may be empty otherwise
};

// Step 2's offsets (frequency and presence on output counts, minus logit_bias), sorted by token,
// one per token; and its masked tokens (sorted, unique). Both samplers (sample_token and the
// device rows of sampling_rows.h) take them from here, so they apply the same values.
std::vector<std::pair<int32_t, float>> token_offsets(const SamplingParams& p, const SamplerState& state);
std::vector<int32_t> masked_tokens(const SamplingParams& p, const SampleContext& ctx, int64_t vocab);

// Chooses the next token (steps 1-6) and records it in `state`. `logits` ([vocab]) is used as
// scratch and modified. Throws Error (steps 1 and 2); the engine ends only that request, with
// the message. Any thread, one call per state at a time.
GeneratedToken sample_token(std::span<float> logits, const SamplingParams& p, SamplerState& state,
                            const SampleContext& ctx);

// The set sample_token would draw from (steps 1-5; greedy: the one token it takes), best
// first, without drawing or recording. For tests and for checking other backends' samplers.
std::vector<int32_t> sampling_candidates(std::span<float> logits, const SamplingParams& p, const SamplerState& state,
                                         const SampleContext& ctx);

}  // namespace dsi
