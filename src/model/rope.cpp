#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace dsi {

namespace {

double yarn_mscale(double factor, double mscale) { return factor <= 1 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0; }

}  // namespace

RopeTable make_rope_table(const ModelConfig& c) {
  const int64_t dim = c.qk_rope_head_dim;
  const double theta = c.rope_theta;
  RopeTable t;
  t.inv_freq.resize(size_t(dim / 2));
  if (!c.rope_scaling) {
    for (int64_t i = 0; i < dim / 2; ++i) t.inv_freq[size_t(i)] = float(std::pow(theta, -2.0 * double(i) / double(dim)));
    return t;
  }
  const YarnScaling& y = *c.rope_scaling;
  const double f = y.factor;
  const double L = double(y.original_max_position_embeddings);
  // The dimension whose wavelength makes n full turns over the original context.
  auto correction_dim = [&](double n_rotations) {
    return double(dim) * std::log(L / (2 * std::numbers::pi * n_rotations)) / (2 * std::log(theta));
  };
  double low = std::max(std::floor(correction_dim(y.beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(y.beta_slow)), double(dim - 1));
  if (low == high) high += 0.001;  // avoids a zero-width ramp
  for (int64_t i = 0; i < dim / 2; ++i) {
    double base = std::pow(theta, -2.0 * double(i) / double(dim));
    double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    double extrapolation = 1 - ramp;  // high-frequency dims keep their frequency
    t.inv_freq[size_t(i)] = float(base / f * (1 - extrapolation) + base * extrapolation);
  }
  if (y.mscale && y.mscale_all_dim && *y.mscale != 0 && *y.mscale_all_dim != 0)
    t.attention_factor = float(yarn_mscale(f, *y.mscale) / yarn_mscale(f, *y.mscale_all_dim));
  else
    t.attention_factor = float(yarn_mscale(f, 1.0));
  return t;
}

}  // namespace dsi
