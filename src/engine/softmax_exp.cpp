#include "engine/softmax_exp.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "backend/sampling.h"

namespace dsi {

void softmax_exp(std::span<const float> x, float max_x, std::span<float> out) {
  const float* __restrict in = x.data();
  float* __restrict dst = out.data();
  for (size_t i = 0; i < x.size(); ++i) dst[i] = sampling::exp_nonpositive(in[i] - max_x);
}

float max_logit(std::span<const float> x) {
  // Independent running maxima per lane (a vector register's worth), combined at the end: the
  // compiler keeps them in registers; one running maximum would be a serial chain.
  constexpr size_t kLanes = 16;
  float lane[kLanes];
  std::fill_n(lane, kLanes, -std::numeric_limits<float>::infinity());
  const size_t n_full = x.size() / kLanes * kLanes;
  for (size_t i = 0; i < n_full; i += kLanes)
    for (size_t j = 0; j < kLanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  float m = -std::numeric_limits<float>::infinity();
  for (float v : lane) m = v > m ? v : m;
  for (size_t i = n_full; i < x.size(); ++i) m = x[i] > m ? x[i] : m;
  return m;
}

LogitScan scan_logits(std::span<const float> x) {
  // !(v < inf) holds exactly for NaN (either sign) and +inf. Per lane, as in max_logit: a
  // running maximum and or-ed flags, both vectorised (the compare cannot trap: see the
  // header); the exact place is looked for only in a flagged block.
  constexpr float kInf = std::numeric_limits<float>::infinity();
  auto bad = [](float v) { return v < kInf ? 0u : 1u; };
  constexpr size_t kLanes = 16, kBlock = 512;
  float lane_max[kLanes];
  std::fill_n(lane_max, kLanes, -std::numeric_limits<float>::infinity());
  float m = -std::numeric_limits<float>::infinity();
  for (size_t begin = 0; begin < x.size(); begin += kBlock) {
    const size_t n = std::min(kBlock, x.size() - begin);
    const float* block = x.data() + begin;
    uint32_t lane_bad[kLanes] = {};
    const size_t n_full = n / kLanes * kLanes;
    for (size_t i = 0; i < n_full; i += kLanes)
      for (size_t j = 0; j < kLanes; ++j) {
        lane_bad[j] |= bad(block[i + j]);
        lane_max[j] = block[i + j] > lane_max[j] ? block[i + j] : lane_max[j];
      }
    uint32_t any = 0;
    for (size_t i = n_full; i < n; ++i) {
      any |= bad(block[i]);
      m = block[i] > m ? block[i] : m;
    }
    for (uint32_t f : lane_bad) any |= f;
    if (any)
      for (size_t i = 0; i < n; ++i)
        if (bad(block[i])) return {m, begin + i};
  }
  for (float v : lane_max) m = v > m ? v : m;
  return {m, x.size()};
}

}  // namespace dsi
