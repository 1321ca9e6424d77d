#pragma once
// The host half of a device sampler (backend/cuda/sampling.h): one step's per-row records from
// each sequence's parameters and state, and the results turned back into tokens or errors,
// exactly as sample_token would (sampler.h's rules; the device runs steps 1-6 on the logits).
// The host keeps each sequence's SamplerState: its stream gives the one uniform a non-greedy
// step draws, so a seed produces the same tokens on every backend.
#include <cstdint>
#include <vector>

#include "backend/sampling.h"
#include "engine/sampler.h"

namespace dsi {

// Appends one row: `row` gets the step's parameters and, unless the path is greedy, a uniform
// drawn from `state` (as sample_token draws it); `penalties` gets the row's penalty and mask
// entries (sorted by token, one per token), row.penalty_begin/end pointing at them. Throws
// Error for a token outside [0, vocab) in the prompt or the output counts.
void prepare_sampling_row(const SamplingParams& p, SamplerState& state, const SampleContext& ctx, int64_t vocab,
                          std::vector<sampling::SamplingPenalty>& penalties, sampling::SamplingRow& row);

// The device's result for the row: the token (recorded in `state`) with its logprobs as
// sample_token returns them, or the Error sample_token would have thrown (steps 1 and 2).
GeneratedToken finish_sampling_row(const sampling::SamplingResult& result, const SamplingParams& p,
                                   SamplerState& state, int64_t vocab);

}  // namespace dsi
