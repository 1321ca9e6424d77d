#pragma once
// The step's sampler's kernel (sampling.h), included by sampling.cu alone and by
// tests/backend/sampling_kernel_emulated_test.cpp (which runs it on CPU threads): one block of
// 512 threads per row, every stage a pass over the row (from L2 after the first) or arithmetic
// on block-wide sums. The kept set is found by
// radix selection over the order keys' value bits (12 + 12 + 8 bits, a shared-memory histogram
// per pass) instead of a sort: top-k selects by count, top-p by integer mass, and the tokens
// tied at a cut are resolved in token order, lower ids first, while the draw walks the row in
// token order. Compiled with -fmad=false (CMakeLists.txt): no product is fused into a sum
// behind the shared arithmetic's back.
#include <cstdint>

#include "backend/sampling.h"

#ifndef DSI_SAMPLING_THREADS
#define DSI_SAMPLING_THREADS 512
#endif

namespace dsi::cuda::sampling_kernel {

using namespace dsi::sampling;

// 512 threads: 1024 would cap registers at 64 and spill.
constexpr int kThreads = DSI_SAMPLING_THREADS;
constexpr int kWarps = kThreads / 32;
static_assert(kWarps <= 32, "one warp combines the per-warp partials");
constexpr int kHist = 4096;               // 12-bit digits
constexpr uint32_t kNoCut = 0xffffffffu;  // above every candidate's key (that is a NaN's)
constexpr unsigned kFull = 0xffffffffu;

struct Shared {
  unsigned long long hist[kHist];
  unsigned long long warp_u64[kWarps];
  unsigned int warp_u32[kWarps];
  float warp_f[kWarps];
  int warp_i[kWarps];
  unsigned long long bcast_u64;
  unsigned int bcast_u32;
  int found;
  int n_top;
  unsigned long long top_keys[kMaxLogprobs];
};

__device__ __forceinline__ int lane_id() { return int(threadIdx.x) & 31; }
__device__ __forceinline__ int warp_id() { return int(threadIdx.x) >> 5; }

__device__ __forceinline__ unsigned long long warp_sum(unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Block-wide reductions: every thread gets the result.
__device__ unsigned long long block_sum(unsigned long long v, Shared& sh) {
  v = warp_sum(v);
  __syncthreads();
  if (lane_id() == 0) sh.warp_u64[warp_id()] = v;
  __syncthreads();
  return warp_sum(lane_id() < kWarps ? sh.warp_u64[lane_id()] : 0ull);
}
__device__ double block_sum_f64(double v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  __syncthreads();
  if (lane_id() == 0) sh.warp_u64[warp_id()] = __double_as_longlong(v);
  __syncthreads();
  v = lane_id() < kWarps ? __longlong_as_double(sh.warp_u64[lane_id()]) : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ unsigned long long block_max(unsigned long long v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  __syncthreads();
  if (lane_id() == 0) sh.warp_u64[warp_id()] = v;
  __syncthreads();
  v = lane_id() < kWarps ? sh.warp_u64[lane_id()] : 0ull;
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ int block_min_int(int v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(kFull, v, o));
  __syncthreads();
  if (lane_id() == 0) sh.warp_i[warp_id()] = v;
  __syncthreads();
  v = lane_id() < kWarps ? sh.warp_i[lane_id()] : INT32_MAX;
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
// The largest value and its first index.
__device__ void block_argmax(float& v, int& i, Shared& sh) {
  auto merge = [](float& best, int& at, float v2, int i2) {
    if (v2 > best || (v2 == best && i2 < at)) best = v2, at = i2;
  };
  for (int o = 16; o > 0; o >>= 1) merge(v, i, __shfl_xor_sync(kFull, v, o), __shfl_xor_sync(kFull, i, o));
  __syncthreads();
  if (lane_id() == 0) sh.warp_f[warp_id()] = v, sh.warp_i[warp_id()] = i;
  __syncthreads();
  v = lane_id() < kWarps ? sh.warp_f[lane_id()] : -INFINITY;
  i = lane_id() < kWarps ? sh.warp_i[lane_id()] : INT32_MAX;
  for (int o = 16; o > 0; o >>= 1) merge(v, i, __shfl_xor_sync(kFull, v, o), __shfl_xor_sync(kFull, i, o));
}

// Exclusive prefix sums over the block in thread order of a (mass, count) pair, and totals.
__device__ void block_scan(unsigned long long m, unsigned int t, Shared& sh, unsigned long long& m_ex,
                           unsigned int& t_ex, unsigned long long& m_tot, unsigned int& t_tot) {
  const int lane = lane_id(), warp = warp_id();
  unsigned long long mi = m;
  unsigned int ti = t;
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long a = __shfl_up_sync(kFull, mi, o);
    const unsigned int b = __shfl_up_sync(kFull, ti, o);
    if (lane >= o) mi += a, ti += b;
  }
  __syncthreads();
  if (lane == 31) sh.warp_u64[warp] = mi, sh.warp_u32[warp] = ti;
  __syncthreads();
  const unsigned long long wm = lane < kWarps ? sh.warp_u64[lane] : 0ull;
  const unsigned int wt = lane < kWarps ? sh.warp_u32[lane] : 0u;
  unsigned long long wmi = wm;
  unsigned int wti = wt;
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long a = __shfl_up_sync(kFull, wmi, o);
    const unsigned int b = __shfl_up_sync(kFull, wti, o);
    if (lane >= o) wmi += a, wti += b;
  }
  m_tot = __shfl_sync(kFull, wmi, 31);
  t_tot = __shfl_sync(kFull, wti, 31);
  const unsigned long long m_before = __shfl_sync(kFull, wmi, warp) - __shfl_sync(kFull, wm, warp);
  const unsigned int t_before = __shfl_sync(kFull, wti, warp) - __shfl_sync(kFull, wt, warp);
  m_ex = m_before + mi - m;
  t_ex = t_before + ti - t;
}

// One histogram pass: every token that item() admits and whose key matches `prefix` under
// `prefix_mask` adds its weight to the bucket of its digit ((key >> shift) & digit_mask). A warp
// whose tokens all fall in one bucket adds once (ties would otherwise serialise the atomics).
template <class Item>
__device__ void histogram(int64_t vocab, const Item& item, uint32_t prefix, uint32_t prefix_mask, int shift,
                          uint32_t digit_mask, Shared& sh) {
  for (int j = int(threadIdx.x); j < kHist; j += kThreads) sh.hist[j] = 0;
  __syncthreads();
  for (int64_t base = 0; base < vocab; base += kThreads) {
    const int64_t i = base + threadIdx.x;
    uint32_t hi = 0;
    unsigned long long w = 0;
    bool ok = i < vocab && item(i, hi, w);
    ok = ok && (hi & prefix_mask) == prefix;
    const uint32_t b = (hi >> shift) & digit_mask;
    const unsigned active = __ballot_sync(kFull, ok);
    if (active == 0) continue;
    const uint32_t b0 = __shfl_sync(kFull, b, __ffs(active) - 1);
    if (__all_sync(kFull, !ok || b == b0)) {
      const unsigned long long s = warp_sum(ok ? w : 0ull);
      if (lane_id() == 0 && s) atomicAdd(&sh.hist[b0], s);
    } else if (ok && w) {
      atomicAdd(&sh.hist[b], w);
    }
  }
  __syncthreads();
}

// The bucket where the histogram's cumulative weight reaches `target` (1 <= target <= total):
// its index and the weight before it.
__device__ void find_crossing(unsigned long long target, Shared& sh, uint32_t& bucket, unsigned long long& before) {
  constexpr int kPer = kHist / kThreads;
  const int first = int(threadIdx.x) * kPer;
  unsigned long long local = 0;
  for (int k = 0; k < kPer; ++k) local += sh.hist[first + k];
  unsigned long long ex, tot;
  unsigned int t_ex, t_tot;
  block_scan(local, 0, sh, ex, t_ex, tot, t_tot);
  if (ex < target && ex + local >= target) {
    unsigned long long c = ex;
    for (int k = 0; k < kPer; ++k) {
      if (c + sh.hist[first + k] >= target) {
        sh.bcast_u32 = uint32_t(first + k);
        sh.bcast_u64 = c;
        break;
      }
      c += sh.hist[first + k];
    }
  }
  __syncthreads();
  bucket = sh.bcast_u32;
  before = sh.bcast_u64;
  __syncthreads();
}

struct Cut {
  bool cut;                // false: the target exceeds the total (nothing is cut)
  uint32_t hi;             // the value bits of the cut: keys above it are out
  unsigned long long above;  // weight of the admitted tokens strictly better than the cut value
  unsigned long long rem;    // weight still needed from the tokens at the cut value
  unsigned long long total;  // weight of everything admitted
};

// Radix selection: the value at which the admitted tokens' cumulative weight, best first,
// reaches target_of(total). `extra_w` is a weight at key `extra_hi` added without a token (the
// part of a tie group an earlier cut kept).
template <class Item, class Target>
__device__ Cut radix_select(int64_t vocab, const Item& item, uint32_t extra_hi, unsigned long long extra_w,
                            const Target& target_of, Shared& sh) {
  constexpr int kShift[3] = {20, 8, 0};
  constexpr uint32_t kDigit[3] = {0xfffu, 0xfffu, 0xffu};
  uint32_t prefix = 0, prefix_mask = 0;
  unsigned long long target = 0, above = 0, total = 0;
  for (int d = 0; d < 3; ++d) {
    histogram(vocab, item, prefix, prefix_mask, kShift[d], kDigit[d], sh);
    if (threadIdx.x == 0 && extra_w && (extra_hi & prefix_mask) == prefix)
      sh.hist[(extra_hi >> kShift[d]) & kDigit[d]] += extra_w;
    __syncthreads();
    if (d == 0) {
      unsigned long long local = 0;
      for (int k = int(threadIdx.x); k < kHist; k += kThreads) local += sh.hist[k];
      total = block_sum(local, sh);
      target = target_of(total);
      if (total < target || target == 0) return {false, kNoCut, 0, 0, total};
    }
    uint32_t b;
    unsigned long long before;
    find_crossing(target, sh, b, before);
    above += before;
    target -= before;
    prefix |= b << kShift[d];
    prefix_mask |= kDigit[d] << kShift[d];
  }
  return {true, prefix, above, target, total};
}

__device__ __forceinline__ unsigned long long ceil_div(unsigned long long a, unsigned long long b) {
  return (a + b - 1) / b;
}

__global__ void __launch_bounds__(kThreads, 1)
sample_kernel(float* logits, int64_t n_rows, int64_t vocab, int64_t row_stride, const SamplingRow* rows,
              SamplingPenalty* penalties, int64_t n_penalties, SamplingResult* results) {
  __shared__ Shared sh;
  const int tid = int(threadIdx.x);
  for (int64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
    float* x = logits + r * row_stride;
    const SamplingRow rp = rows[r];
    SamplingResult* out = results + r;

    // Step 1: the contract, the raw maximum and its first index.
    int bad = INT32_MAX, best_i = INT32_MAX;
    float best = -INFINITY;
    for (int64_t i = tid; i < vocab; i += kThreads) {
      const float v = x[i];
      if (!(v < INFINITY)) bad = min(bad, int(i));
      if (v > best) best = v, best_i = int(i);
    }
    bad = block_min_int(bad, sh);
    block_argmax(best, best_i, sh);
    if (bad != INT32_MAX || best == -INFINITY) {
      if (tid == 0) {
        *out = SamplingResult{};
        out->status = bad != INT32_MAX ? (isnan(x[bad]) ? sampling_nan : sampling_pos_inf) : sampling_all_neg_inf;
        out->bad_index = bad != INT32_MAX ? bad : 0;
      }
      continue;
    }
    const float raw_max = best;

    // Raw log-softmax's normaliser and the top-N (before any processing, as vLLM reports).
    double log_z = 0;
    int n_top = 0;
    if (rp.n_logprobs >= 0) {
      double sum = 0;
      for (int64_t i = tid; i < vocab; i += kThreads) sum += double(exp_nonpositive(x[i] - raw_max));
      log_z = double(raw_max) + log(block_sum_f64(sum, sh));
      n_top = int(min(int64_t(min(rp.n_logprobs, kMaxLogprobs)), vocab));
    }
    if (n_top > 0) {
      auto raw_item = [&](int64_t i, uint32_t& hi, unsigned long long& w) {
        hi = order_bits(x[i]);
        w = 1;
        return true;
      };
      const Cut c = radix_select(vocab, raw_item, 0, 0, [&](unsigned long long) { return (unsigned long long)n_top; }, sh);
      const uint32_t cut_hi = c.cut ? c.hi : kNoCut;
      const unsigned long long n_tied = c.cut ? c.rem : ~0ull;
      if (tid == 0) sh.n_top = 0;
      __syncthreads();
      unsigned long long carry = 0;
      for (int64_t base = 0; base < vocab; base += kThreads) {
        const int64_t i = base + tid;
        const uint32_t hi = i < vocab ? order_bits(x[i]) : kNoCut;
        const bool tied = i < vocab && hi == cut_hi;
        unsigned long long m_ex, m_tot;
        unsigned int t_ex, t_tot;
        block_scan(0, tied ? 1u : 0u, sh, m_ex, t_ex, m_tot, t_tot);
        if (i < vocab && (hi < cut_hi || (tied && carry + t_ex < n_tied))) {
          const int slot = atomicAdd(&sh.n_top, 1);
          if (slot < kMaxLogprobs) sh.top_keys[slot] = order_key(x[i], int32_t(i));
        }
        carry += t_tot;
      }
      __syncthreads();
      if (tid == 0) {
        const int n = min(sh.n_top, kMaxLogprobs);
        for (int a = 1; a < n; ++a)  // insertion sort of at most 20 keys
          for (int b = a; b > 0 && sh.top_keys[b] < sh.top_keys[b - 1]; --b) {
            const unsigned long long k = sh.top_keys[b];
            sh.top_keys[b] = sh.top_keys[b - 1];
            sh.top_keys[b - 1] = k;
          }
        for (int a = 0; a < n; ++a) {
          const int32_t t = key_token(sh.top_keys[a]);
          out->top_tokens[a] = t;
          out->top_logprobs[a] = float(double(x[t]) - log_z);
        }
        out->n_top = n;
      }
    } else if (tid == 0) {
      out->n_top = 0;
    }
    __syncthreads();  // the top-N read raw values that the penalties below change

    // Step 2: penalties and min_tokens masks in place (the raw values kept for the logprob).
    const int64_t pen_begin = max(int64_t(rp.penalty_begin), int64_t(0));
    const int64_t pen_end = min(int64_t(rp.penalty_end), n_penalties);
    for (int64_t e = pen_begin + tid; e < pen_end; e += kThreads) {
      SamplingPenalty& pe = penalties[e];
      if (pe.token < 0 || pe.token >= vocab) continue;
      float v = x[pe.token];
      pe.raw = v;
      if (pe.ops & apply_repetition) v = repetition_penalized(v, rp.repetition_penalty);
      if (pe.ops & apply_offset) v = offset_penalized(v, pe.offset);
      if (pe.ops & apply_mask) v = -INFINITY;
      x[pe.token] = v;
    }
    __syncthreads();
    float max_v = raw_max;
    int argmax = best_i;
    if (pen_end > pen_begin) {
      max_v = -INFINITY, argmax = INT32_MAX;
      for (int64_t i = tid; i < vocab; i += kThreads) {
        const float v = x[i];
        if (v > max_v) max_v = v, argmax = int(i);
      }
      block_argmax(max_v, argmax, sh);
    }
    if (max_v == -INFINITY) {
      if (tid == 0) {
        out->status = sampling_all_masked;
        out->bad_index = 0;
      }
      continue;
    }

    int32_t token = argmax, last_kept = argmax;
    int n_kept = 1;
    if (!rp.greedy) {
      // Steps 4-5: s, q and the kept set K = (cut_hi, n_tied): every candidate with value bits
      // below cut_hi, and the first n_tied in token order of those at cut_hi.
      const float inv_t = rp.inv_temperature;
      const double min_p = rp.min_p;
      auto value = [&](int64_t i, float& s, float& q) {
        s = (x[i] - max_v) * inv_t;
        q = exp_nonpositive(s);
        return in_candidates(q, min_p);
      };
      auto unit_weight = [](uint32_t hi) { return (unsigned long long)weight_of(exp_nonpositive(order_bits_value(hi))); };
      uint32_t cut_hi = kNoCut;
      unsigned long long n_tied = ~0ull, mass = 0;
      bool mass_known = false;
      if (rp.top_k > 0) {
        auto count_item = [&](int64_t i, uint32_t& hi, unsigned long long& w) {
          float s, q;
          if (!value(i, s, q)) return false;
          hi = order_bits(s);
          w = 1;
          return true;
        };
        const Cut c = radix_select(vocab, count_item, 0, 0, [&](unsigned long long) { return (unsigned long long)rp.top_k; }, sh);
        if (c.cut) cut_hi = c.hi, n_tied = c.rem;
      }
      if (rp.top_p_53 < (uint64_t(1) << 53)) {
        const uint32_t k_hi = cut_hi;
        const unsigned long long k_extra = k_hi == kNoCut ? 0 : n_tied * unit_weight(k_hi);
        auto mass_item = [&](int64_t i, uint32_t& hi, unsigned long long& w) {
          float s, q;
          if (!value(i, s, q)) return false;
          hi = order_bits(s);
          w = weight_of(q);
          return hi < k_hi;  // the part of the top-k tie group that it kept comes in as k_extra
        };
        const uint64_t p53 = rp.top_p_53;
        const Cut c = radix_select(vocab, mass_item, k_hi, k_extra,
                                   [&](unsigned long long total) { return (unsigned long long)top_p_need(p53, total); }, sh);
        const unsigned long long w = unit_weight(c.hi);
        cut_hi = c.hi;
        n_tied = ceil_div(c.rem, w);
        mass = c.above + n_tied * w;
        mass_known = true;
      }
      const unsigned long long w_cut = cut_hi == kNoCut ? 0 : unit_weight(cut_hi);
      if (!mass_known) {
        unsigned long long local = 0;
        for (int64_t i = tid; i < vocab; i += kThreads) {
          float s, q;
          if (value(i, s, q) && order_bits(s) < cut_hi) local += weight_of(q);
        }
        mass = block_sum(local, sh) + (cut_hi == kNoCut ? 0 : n_tied * w_cut);
      }
      // Step 6: the first kept token in token order whose cumulative mass passes the target.
      const unsigned long long target = draw_target(rp.uniform_53, mass);
      if (tid == 0) sh.found = INT32_MAX;
      __syncthreads();
      unsigned long long carry_m = 0, carry_t = 0, worst_key = 0;
      unsigned int local_kept = 0;
      for (int64_t base = 0; base < vocab; base += kThreads) {
        const int64_t i = base + tid;
        float s = 0, q = 0;
        bool member = false, tied = false;
        unsigned long long w = 0;
        if (i < vocab && value(i, s, q)) {
          const uint32_t hi = order_bits(s);
          w = weight_of(q);
          member = hi < cut_hi;
          tied = hi == cut_hi;
        }
        unsigned long long m_ex, m_tot;
        unsigned int t_ex, t_tot;
        block_scan(member ? w : 0ull, tied ? 1u : 0u, sh, m_ex, t_ex, m_tot, t_tot);
        const unsigned long long rank = carry_t + t_ex;  // tied tokens before this one
        if (tied && rank < n_tied) member = true;
        // Mass of K before this token: earlier tiles (carry_m, their kept tied tokens included),
        // this tile's untied members, and this tile's tied tokens before it that K keeps.
        const unsigned long long cum = carry_m + m_ex + (min(rank, n_tied) - min(carry_t, n_tied)) * w_cut;
        if (member) {
          ++local_kept;
          worst_key = max(worst_key, (unsigned long long)order_key(s, int32_t(i)));
          if (cum <= target && cum + w > target) atomicMin(&sh.found, int(i));
        }
        carry_m += m_tot + (min(carry_t + t_tot, n_tied) - min(carry_t, n_tied)) * w_cut;
        carry_t += t_tot;
      }
      n_kept = int(block_sum(local_kept, sh));
      worst_key = block_max(worst_key, sh);
      token = sh.found;
      last_kept = key_token(worst_key);
    }
    if (tid == 0) {
      out->status = token != INT32_MAX ? sampling_ok : sampling_all_masked;  // (a found token always exists)
      out->bad_index = 0;
      out->token = token;
      out->n_kept = n_kept;
      out->last_kept = last_kept;
      float raw = token != INT32_MAX ? x[token] : 0.0f;
      for (int64_t lo = pen_begin, hi = pen_end; lo < hi;) {  // the penalised tokens' raw values
        const int64_t mid = (lo + hi) / 2;
        if (penalties[mid].token < token) {
          lo = mid + 1;
        } else {
          if (penalties[mid].token == token) raw = penalties[mid].raw;
          hi = mid;
        }
      }
      out->logprob = rp.n_logprobs >= 0 ? float(double(raw) - log_z) : 0.0f;
    }
    __syncthreads();  // sh is reused by the next row
  }
}

}  // namespace dsi::cuda::sampling_kernel
