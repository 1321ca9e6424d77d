#pragma once
// The sampler's arithmetic that every backend shares bit for bit (engine/sampler.h has the
// rules), and the plain per-row records through which a device sampler gets one step's
// parameters and returns its results. Header only, compiled by the host compiler and by nvcc
// (host and device), so it uses no library beyond <cstdint>, <cstring> and <cmath>, and every
// floating-point step is written out (explicit fma, no expression a compiler could contract):
// the CPU and the GPU must compute the same q and the same sums for the same logits, so that
// they keep the same set and draw the same token for a seed.
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DSI_HD __host__ __device__ __forceinline__
#else
#define DSI_HD inline
#endif

namespace dsi::sampling {

constexpr int kMaxLogprobs = 20;
// Masses are integers: w = floor(q * 2^kWeightBits) with q <= 1, so a sum over a vocabulary of
// up to kMaxVocab tokens fits in 63 bits and is exact in any order (a parallel sum on the GPU
// equals the CPU's serial one). Tokens with q < 2^-43 weigh 0: in K, never drawn.
constexpr int kWeightBits = 43;
constexpr int64_t kMaxVocab = int64_t(1) << 20;
constexpr float kExpZeroBelow = -87.33654f;  // ln(FLT_MIN): exp_nonpositive(x) > 0 exactly for x >= it

DSI_HD uint32_t float_bits(float v) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(v);
#else
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
#endif
}
DSI_HD float bits_float(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float v;
  std::memcpy(&v, &b, 4);
  return v;
#endif
}
DSI_HD float fma_f32(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// exp(x) for x <= 0: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in a high part with few bits, so
// n * kLn2Hi is exact, and the rest), exp(r) by its Taylor series to r^7 (the next term is below
// 1e-8 relative), times 2^n built in the exponent bits. Within 2 ulp of float's exp; 0 below
// float's normal range (x < kExpZeroBelow), for -inf and for NaN. Straight-line code, so that a
// loop of it vectorises.
DSI_HD float exp_nonpositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // 0x1.62e4p-1: 16 significant bits
  constexpr float kLn2Lo = float(0.693147180559945309 - 0.693145751953125);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x > -87.5f ? x : -87.5f;  // -inf and NaN land here too: 2^n stays normal
  const float n = fma_f32(xc, kLog2e, kRound) - kRound;
  float r = fma_f32(n, -kLn2Hi, xc);
  r = fma_f32(n, -kLn2Lo, r);
  float p = 1.0f / 5040;
  p = fma_f32(p, r, 1.0f / 720);
  p = fma_f32(p, r, 1.0f / 120);
  p = fma_f32(p, r, 1.0f / 24);
  p = fma_f32(p, r, 1.0f / 6);
  p = fma_f32(p, r, 0.5f);
  const float pr = p * r;
  p = fma_f32(pr, r, r) + 1.0f;
  const float scale = bits_float(uint32_t(int32_t(n) + 127) << 23);
  const float ps = p * scale;
  return ps * float(x >= kExpZeroBelow);
}

// A value's place in the best-first order (larger first) as an unsigned integer: smaller key,
// better value (-0 and +0 are one value). The full order key puts the token id below it, so
// ties go to the lower id and every cut is a prefix of one strict total order.
DSI_HD uint32_t order_bits(float value) {
  const uint32_t bits = float_bits(value == 0.0f ? 0.0f : value);
  const uint32_t ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);  // unsigned order = float order
  return ~ordered;
}
DSI_HD float order_bits_value(uint32_t key_hi) {  // the inverse of order_bits
  const uint32_t ordered = ~key_hi;
  return bits_float((ordered & 0x80000000u) ? (ordered & 0x7fffffffu) : ~ordered);
}
DSI_HD uint64_t order_key(float value, int32_t token) { return (uint64_t(order_bits(value)) << 32) | uint32_t(token); }
DSI_HD int32_t key_token(uint64_t key) { return int32_t(uint32_t(key)); }

DSI_HD uint64_t weight_of(float q) { return uint64_t(q * 0x1p43f); }  // exact product, truncated
DSI_HD bool in_candidates(float q, double min_p) { return q > 0 && double(q) >= min_p; }

// floor(a * b / 2^53) for a <= 2^53, exactly (a 128-bit product).
DSI_HD uint64_t mul_shift53(uint64_t a, uint64_t b, bool round_up = false) {
#if defined(__CUDA_ARCH__)
  const uint64_t hi = __umul64hi(a, b), lo = a * b;
#else
  __extension__ typedef unsigned __int128 u128;
  const u128 prod = u128(a) * b;
  const uint64_t hi = uint64_t(prod >> 64), lo = uint64_t(prod);
#endif
  const uint64_t q = (hi << 11) | (lo >> 53);
  return q + uint64_t(round_up && (lo & ((uint64_t(1) << 53) - 1)) != 0);
}
// A double in [0, 1] as an integer of 2^-53 units (exact for the sampler's uniforms).
DSI_HD uint64_t unit_to_53(double u) { return uint64_t(u * 0x1p53); }
// Top-p's mass: the shortest best-first prefix whose mass reaches ceil(top_p * total); at
// least 1, so the best token alone when top_p * total rounds to nothing.
DSI_HD uint64_t top_p_need(uint64_t top_p_53, uint64_t total) {
  const uint64_t need = mul_shift53(top_p_53, total, true);
  return need > 0 ? need : 1;
}
// The draw: the first kept token, in token order, whose cumulative mass exceeds
// floor(u * total) (< total, so one always does).
DSI_HD uint64_t draw_target(uint64_t uniform_53, uint64_t total) { return mul_shift53(uniform_53, total); }

// Penalties keep finite values finite (at +-FLT_MAX) and leave -inf alone.
DSI_HD float saturate(float v) {
  constexpr float kMax = 3.40282347e38f;
  return v < -kMax ? -kMax : (v > kMax ? kMax : v);
}
DSI_HD float repetition_penalized(float v, float r) { return v == -INFINITY ? v : saturate(v > 0 ? v / r : v * r); }
DSI_HD float offset_penalized(float v, float offset) { return v == -INFINITY ? v : saturate(v - offset); }

// ---- One step of a device sampler: per-row records (host -> device) and results (back).

// Operations on one token of a row (SamplingRow's penalty list), applied in this order.
enum PenaltyOp : uint32_t {
  apply_repetition = 1,  // seen in the prompt or the output: repetition_penalized
  apply_offset = 2,      // in the output: offset_penalized by frequency * count + presence
  apply_mask = 4,        // EOS or stop token before min_tokens: -inf
};
struct SamplingPenalty {
  int32_t token;
  uint32_t ops;   // PenaltyOp bits
  float offset;   // float(frequency_penalty * count + presence_penalty), for apply_offset
  float raw;      // scratch: the device sampler keeps the logit here before changing it
};

struct SamplingRow {
  int32_t greedy;             // 1: the first index of the largest value, no draw
  float inv_temperature;      // float(1 / temperature)
  int32_t top_k;              // 0: off (also when >= vocab)
  double min_p;               // 0: off
  uint64_t top_p_53;          // top_p in 2^-53 units; 2^53: off
  uint64_t uniform_53;        // this step's uniform in 2^-53 units (drawn on the host)
  float repetition_penalty;   // float(repetition_penalty) for apply_repetition
  int32_t n_logprobs;         // -1: none; 0: the chosen token's; N <= 20: and the top N
  int32_t penalty_begin;      // this row's SamplingPenalty entries [begin, end), sorted by token
  int32_t penalty_end;
  int32_t min_tokens;         // for the "every token is masked" message
  int32_t reserved;
};

enum SamplingStatus : int32_t {
  sampling_ok = 0,
  sampling_nan = 1,        // bad_index: the first NaN or +inf (contract step 1)
  sampling_pos_inf = 2,
  sampling_all_neg_inf = 3,
  sampling_all_masked = 4,  // nothing finite after penalties and min_tokens masks (step 2)
};

struct SamplingResult {
  int32_t status;        // SamplingStatus
  int32_t bad_index;     // the token of a NaN / +inf status
  int32_t token;         // the chosen token (status ok)
  float logprob;         // its raw log-softmax (n_logprobs >= 0)
  int32_t n_kept;        // |K| (1 when greedy)
  int32_t last_kept;     // K's last token best first (the cut); the token when greedy
  int32_t n_top;         // entries of top_* filled (min(n_logprobs, vocab))
  int32_t reserved;
  int32_t top_tokens[kMaxLogprobs];  // raw top-N, best first (ties: lower id first)
  float top_logprobs[kMaxLogprobs];
};

}  // namespace dsi::sampling
