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

// The index of the first NaN or +inf in x, or x.size() when there is none. Vectorised: a
// block with no such value costs one compare per element.
size_t find_nan_or_inf(std::span<const float> x);

}  // namespace dsi
