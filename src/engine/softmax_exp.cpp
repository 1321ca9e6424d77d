#include "engine/softmax_exp.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace dsi {
namespace {

// exp(x) for x <= 0: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in a high part with few bits,
// so n * kLn2Hi is exact, and the rest), exp(r) by its Taylor series to r^7 (the next term is
// below 1e-8 relative), times 2^n built in the exponent bits. Straight-line code, so that a
// loop of it vectorises.
inline float exp_nonpositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // 0x1.62e4p-1: 16 significant bits
  constexpr float kLn2Lo = float(0.693147180559945309 - 0.693145751953125);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x > -87.5f ? x : -87.5f;  // -inf and NaN land here too: 2^n stays normal
  const float n = (xc * kLog2e + kRound) - kRound;
  float r = std::fma(n, -kLn2Hi, xc);
  r = std::fma(n, -kLn2Lo, r);
  float p = 1.0f / 5040;
  p = std::fma(p, r, 1.0f / 720);
  p = std::fma(p, r, 1.0f / 120);
  p = std::fma(p, r, 1.0f / 24);
  p = std::fma(p, r, 1.0f / 6);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p * r, r, r) + 1.0f;
  const float scale = std::bit_cast<float>((int32_t(n) + 127) << 23);
  return p * scale * float(x >= -87.33654f);  // ln(FLT_MIN): 0 below float's normal range, -inf, NaN
}

}  // namespace

void softmax_exp(std::span<const float> x, float max_x, std::span<float> out) {
  const float* __restrict in = x.data();
  float* __restrict dst = out.data();
  for (size_t i = 0; i < x.size(); ++i) dst[i] = exp_nonpositive(in[i] - max_x);
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
