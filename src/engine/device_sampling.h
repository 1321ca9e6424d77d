#pragma once
// A step's token choice on the backend's device sampler (backend/cuda/sampling.h): the host
// prepares each row's record (engine/sampling_rows.h: parameters, penalty and mask entries, the
// uniform drawn from the sequence's own stream), one launch samples every row of the logits the
// step left on the device, and the results come back as tokens or as the error sample_token
// would have thrown. The logits never cross PCIe; the same rules and arithmetic as the CPU
// sampler (engine/sampler.h) give the same tokens for the same seed.
#include <span>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "engine/sampler.h"

namespace dsi {

// One sequence to sample: its parameters, its sampler state (advanced here), its context.
struct SampleInput {
  const SamplingParams* params;
  SamplerState* state;
  SampleContext context;
};

// Whether a sequence samples on the device when the runner can: not where its masks may cover
// most of the vocabulary (a grammar, allowed_token_ids), whose entries would outweigh the
// logits row they replace; those steps copy the logits to the host instead.
bool suits_device_sampling(const SamplingParams& p);

// A greedy row without penalties or logprobs (its penalty range empty at `penalty_at`).
sampling::SamplingRow plain_greedy_row(int32_t penalty_at);

// Samples the last ModelRunner::forward_on_device's logits rows, row i for inputs[i]: tokens[i]
// gets its token, or errors[i] the message of a row that cannot be sampled (the request ends
// with it; the other rows are unaffected).
void sample_rows_on_device(ModelRunner& runner, std::span<const SampleInput> inputs, std::vector<GeneratedToken>& tokens,
                           std::vector<std::string>& errors);

}  // namespace dsi
