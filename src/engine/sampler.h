#pragma once
// Token choice from one row of logits: penalties, temperature, top-k, top-p, min-p, seeded
// randomness, and the raw log-probabilities the API reports (computed before any processing,
// as vLLM does by default).
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

struct SampleContext {
  std::span<const int32_t> prompt;
  int n_generated;                       // tokens generated before this one
  std::span<const int64_t> eos_token_ids;  // masked (with stop_token_ids) before min_tokens
};

// Chooses the next token. `logits` ([vocab]) is used as scratch and modified.
GeneratedToken sample_token(std::span<float> logits, const SamplingParams& p, SamplerState& state,
                            const SampleContext& ctx);

}  // namespace dsi
