#pragma once
// The one pass over the whole vocabulary that sampling and logprobs need: exp(logit - max).
#include <cstddef>
#include <span>

namespace dsi {

// out[i] = exp(x[i] - max_x) for max_x >= every x[i] (the largest logit): within 2 ulp of
// float's exp, 0 where the true value is below float's normal range (masked -inf logits
// included) and for NaN logits, so such tokens can never be drawn. Vectorised: this file is
// compiled with -fno-trapping-math (we never read floating-point exception flags), which is
// what lets the compiler vectorise the select.
void softmax_exp(std::span<const float> x, float max_x, std::span<float> out);

// The largest element (NaN ignored; -inf for an empty or all-NaN span). Vectorised too.
float max_logit(std::span<const float> x);

// One pass for the sampler's contract on logits: the first index of a NaN or +inf (x.size()
// when there is none) and, when there is none, the largest element (as max_logit). Vectorised.
struct LogitScan {
  float max_value;
  size_t first_nan_or_inf;
};
LogitScan scan_logits(std::span<const float> x);

}  // namespace dsi
