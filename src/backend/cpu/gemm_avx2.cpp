// AVX2 / FMA / F16C leaf kernels of the CPU GEMM (see gemm_detail.h for the contracts).
#include "backend/cpu/gemm_detail.h"

#if DSI_GEMM_AVX2

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace dsi::cpu::gemm_detail {
namespace {

// ---- widening --------------------------------------------------------------------------------

void widen_bf16_row(const uint16_t* src, int64_t n, float* dst) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j));
    // bf16 is the top half of a float32: widen to 32 bits and shift into place.
    __m256i f = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    _mm256_storeu_ps(dst + j, _mm256_castsi256_ps(f));
  }
  for (; j < n; ++j) dst[j] = bf16_to_f32(src[j]);
}

void widen_f16_row(const uint16_t* src, int64_t n, float* dst) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j))));
  for (; j < n; ++j) dst[j] = f16_to_f32(src[j]);
}

// Eight e4m3 codes as float32 times 2^-120 (dtype.h's shift trick): sign-extending puts the
// sign in bit 31 once shifted, the mask clears the copies of it in bits 27..30.
inline __m256i fp8x8_shifted_bits(const uint8_t* src) {
  __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src)));
  return _mm256_and_si256(_mm256_slli_epi32(v, 20), _mm256_set1_epi32(int32_t(0x87f00000u)));
}

// Codes 0x7f and 0xff are NaN in e4m3fn; the shift would read them as +-480.
inline __m256 fp8x8_nan_fix(__m256i bits, __m256 value) {
  const __m256i nan_mag = _mm256_set1_epi32(0x07f00000);
  __m256i is_nan = _mm256_cmpeq_epi32(_mm256_and_si256(bits, nan_mag), nan_mag);
  return _mm256_blendv_ps(value, _mm256_set1_ps(std::nanf("")), _mm256_castsi256_ps(is_nan));
}

// Eight codes times their block's scale, each rounded once; NaN codes give NaN.
inline __m256 fp8x8_widen(const uint8_t* src, float scale) {
  const __m256i bits = fp8x8_shifted_bits(src);
  const float folded = scale * kFp8ShiftCompensation;  // exact: a power-of-two multiple
  __m256 v;
  if (std::isfinite(folded) || !std::isfinite(scale)) [[likely]] {
    v = _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(folded));
  } else {  // |scale| >= 2^8 would overflow the folded factor: widen exactly first, then scale
    v = _mm256_mul_ps(_mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(kFp8ShiftCompensation)),
                      _mm256_set1_ps(scale));
  }
  return fp8x8_nan_fix(bits, v);
}

// One row segment inside a single scale block: dst[j] = code(src[j]) * scale, rounded once.
void widen_fp8_segment(const uint8_t* src, int64_t n, float scale, float* dst) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(dst + j, fp8x8_widen(src + j, scale));
  for (; j < n; ++j) dst[j] = fp8_e4m3_to_f32(src[j]) * scale;
}

void widen_fp8_row(const Weight& w, int64_t row, int64_t c0, int64_t n, float* dst) {
  const auto* src = w.w.row<const uint8_t>(row);
  const float* scales = w.scale.row<const float>((row + w.row_offset) / w.block_rows);
  for (int64_t c = c0; c < c0 + n;) {
    int64_t block = c / w.block_cols;
    int64_t end = std::min(c0 + n, (block + 1) * w.block_cols);
    widen_fp8_segment(src + c, end - c, scales[block], dst + (c - c0));
    c = end;
  }
}

// ---- the packed kernel -----------------------------------------------------------------------

// Lane mask with the first n lanes (0..8) set.
inline __m256i first_lanes(int n) {
  alignas(32) static constexpr int32_t kOnesThenZeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                             0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnesThenZeros + 8 - n));
}

// Adds (or stores) one 16-wide accumulator row into y[0, n_out).
inline void store_row(__m256 lo, __m256 hi, int n_out, float* y, bool accumulate) {
  if (n_out == kNr) {
    if (accumulate) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(y));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(y + 8));
    }
    _mm256_storeu_ps(y, lo);
    _mm256_storeu_ps(y + 8, hi);
    return;
  }
  __m256i m_lo = first_lanes(std::min(n_out, 8)), m_hi = first_lanes(std::max(n_out - 8, 0));
  if (accumulate) {
    lo = _mm256_add_ps(lo, _mm256_maskload_ps(y, m_lo));
    hi = _mm256_add_ps(hi, _mm256_maskload_ps(y + 8, m_hi));
  }
  _mm256_maskstore_ps(y, m_lo, lo);
  _mm256_maskstore_ps(y + 8, m_hi, hi);
}

// MR tokens x 16 outputs in 2 * MR accumulators; per step two panel loads and MR broadcasts
// feed 2 * MR FMAs, so the FMA units, not the loads, set the pace (Haswell-style 6x16 tile).
// Few tokens give too few independent FMA chains to cover the FMA latency: those split the
// steps over S accumulator sets, summed at the end.
template <int MR>
void micro_tile_mr(int n_out, int64_t kc, const float* x, int64_t x_stride, const float* panel, float* y,
                   int64_t y_stride, bool accumulate) {
  constexpr int S = MR == 1 ? 4 : MR <= 3 ? 2 : 1;
  __m256 lo[S][MR], hi[S][MR];
  const float* xr[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) xr[i] = x + i * x_stride;
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) lo[s][i] = hi[s][i] = _mm256_setzero_ps();
  auto step = [&](int s, int64_t p) {
    __m256 b0 = _mm256_load_ps(panel + p * kNr), b1 = _mm256_load_ps(panel + p * kNr + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m256 a = _mm256_broadcast_ss(xr[i] + p);
      lo[s][i] = _mm256_fmadd_ps(a, b0, lo[s][i]);
      hi[s][i] = _mm256_fmadd_ps(a, b1, hi[s][i]);
    }
  };
  int64_t p = 0;
#pragma GCC unroll 2
  for (; p + S <= kc; p += S)
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) step(s, p + s);
  for (; p < kc; ++p) step(0, p);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int s = 1; s < S; ++s) {
      lo[0][i] = _mm256_add_ps(lo[0][i], lo[s][i]);
      hi[0][i] = _mm256_add_ps(hi[0][i], hi[s][i]);
    }
    store_row(lo[0][i], hi[0][i], n_out, y + i * y_stride, accumulate);
  }
}

// ---- the dot kernel --------------------------------------------------------------------------

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Weight vectors of each dtype the dot kernel reads in place. The scaled ones (fp8) give the
// code times 2^-120 and leave the block scale (times 2^120) to the kernel.
struct LoadF32 {
  using Elem = float;
  static constexpr bool kScaled = false;
  static __m256 vec(const float* p) { return _mm256_loadu_ps(p); }
  static float one(const float* p) { return *p; }
};
struct LoadBf16 {
  using Elem = uint16_t;
  static constexpr bool kScaled = false;
  static __m256 vec(const uint16_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const uint16_t* p) { return bf16_to_f32(*p); }
};
struct LoadF16 {
  using Elem = uint16_t;
  static constexpr bool kScaled = false;
  static __m256 vec(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float one(const uint16_t* p) { return f16_to_f32(*p); }
};
struct LoadFp8 {
  using Elem = uint8_t;
  static constexpr bool kScaled = true;
  static __m256 vec(const uint8_t* p) { return _mm256_castsi256_ps(fp8x8_shifted_bits(p)); }
  static float one(const uint8_t* p) {
    return std::bit_cast<float>((uint32_t(int32_t(int8_t(*p))) << 20) & 0x87f00000u);
  }
};

// Marks NaN codes (0x7f, 0xff: all ones once the sign bit is set) of 32 fp8 codes in `found`.
inline void fp8x32_find_nan(const uint8_t* p, __m256i& found) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i all = _mm256_or_si256(v, _mm256_set1_epi8(int8_t(0x80)));
  found = _mm256_or_si256(found, _mm256_cmpeq_epi8(all, _mm256_set1_epi8(-1)));
}

// R weight rows x T tokens, each an 8-lane accumulator along k: every loaded weight vector
// serves T tokens and every token vector R rows. Scaled weights (fp8) take their row's fold of
// each block of fp8.block_cols columns; their NaN codes are read as +-480 but reported: the
// return value says whether any of the R rows holds one.
template <class Load, int R, int T>
bool dot_rt(int64_t kc, const typename Load::Elem* w, int64_t w_stride, const Fp8Folds& fp8, const float* x,
            int64_t x_stride, float* y, int64_t y_stride, bool accumulate) {
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  [[maybe_unused]] __m256 fold[R];
  auto step = [&](int64_t p) {
    __m256 xv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * x_stride + p);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m256 wv = Load::vec(w + r * w_stride + p);
      if constexpr (Load::kScaled) wv = _mm256_mul_ps(wv, fold[r]);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  };
  __m256i nan_found = _mm256_setzero_si256();
  bool tail_nan = false;
  const int64_t kc8 = kc & ~int64_t(7);
  if constexpr (Load::kScaled) {
    for (int64_t b0 = 0; b0 < kc8; b0 += fp8.block_cols) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) fold[r] = _mm256_set1_ps(fp8.fold[r * fp8.n_blocks + b0 / fp8.block_cols]);
      const int64_t b1 = std::min(b0 + fp8.block_cols, kc8);
      int64_t p = b0;
      // The NaN check reads the codes the steps read, 32 at a time, from L1.
      for (; p + 32 <= b1; p += 32) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) fp8x32_find_nan(w + r * w_stride + p, nan_found);
        step(p);
        step(p + 8);
        step(p + 16);
        step(p + 24);
      }
      for (; p < b1; p += 8) {
        for (int r = 0; r < R; ++r)
          for (int j = 0; j < 8; ++j) tail_nan |= (w[r * w_stride + p + j] & 0x7f) == 0x7f;
        step(p);
      }
    }
  } else {
    for (int64_t p = 0; p < kc8; p += 8) step(p);
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[r][t]);
      for (int64_t p = kc8; p < kc; ++p) {
        float wv = Load::one(w + r * w_stride + p);
        if constexpr (Load::kScaled) {
          wv *= fp8.fold[r * fp8.n_blocks + p / fp8.block_cols];
          tail_nan |= (w[r * w_stride + p] & 0x7f) == 0x7f;
        }
        s = std::fma(wv, x[t * x_stride + p], s);
      }
      float* out = y + t * y_stride + r;
      *out = accumulate ? *out + s : s;
    }
  }
  return tail_nan || !_mm256_testz_si256(nan_found, nan_found);
}

template <class Load, int R, int T>
bool dot_rows(int n_rows, int64_t kc, const typename Load::Elem* w, int64_t w_stride, const Fp8Folds& fp8,
              const float* x, int64_t x_stride, float* y, int64_t y_stride, bool accumulate) {
  int r = 0;
  bool nan = false;
  Fp8Folds f = fp8;
  for (; r + R <= n_rows; r += R, f.fold += R * f.n_blocks)
    nan |= dot_rt<Load, R, T>(kc, w + r * w_stride, w_stride, f, x, x_stride, y + r, y_stride, accumulate);
  for (; r < n_rows; ++r, f.fold += f.n_blocks)
    nan |= dot_rt<Load, 1, T>(kc, w + r * w_stride, w_stride, f, x, x_stride, y + r, y_stride, accumulate);
  return nan;
}

template <class Load>
bool dot_tile_as(int n_rows, int n_tok, int64_t kc, const void* w, int64_t w_stride, const Fp8Folds& fp8,
                 const float* x, int64_t x_stride, float* y, int64_t y_stride, bool accumulate) {
  const auto* wt = static_cast<const typename Load::Elem*>(w);
  // Rows per pass so that R x T accumulators, T token vectors and a weight vector (about) fit
  // the 16 vector registers; fp8 rows also want their folded scales there.
  switch (n_tok) {
    case 1:
      return dot_rows<Load, (Load::kScaled ? 4 : 8), 1>(n_rows, kc, wt, w_stride, fp8, x, x_stride, y,
                                                        y_stride, accumulate);
    case 2: return dot_rows<Load, 4, 2>(n_rows, kc, wt, w_stride, fp8, x, x_stride, y, y_stride, accumulate);
    case 3: return dot_rows<Load, 4, 3>(n_rows, kc, wt, w_stride, fp8, x, x_stride, y, y_stride, accumulate);
    default: return dot_rows<Load, 3, 4>(n_rows, kc, wt, w_stride, fp8, x, x_stride, y, y_stride, accumulate);
  }
}

}  // namespace

void widen(const Weight& w, int64_t r0, int64_t n_rows, int64_t c0, int64_t n_cols, float* dst,
           int64_t dst_stride) {
  for (int64_t i = 0; i < n_rows; ++i) {
    float* out = dst + i * dst_stride;
    switch (w.w.dtype) {
      case DType::f32:
        std::memcpy(out, w.w.row<const float>(r0 + i) + c0, size_t(n_cols) * sizeof(float));
        break;
      case DType::bf16: widen_bf16_row(w.w.row<const uint16_t>(r0 + i) + c0, n_cols, out); break;
      case DType::f16: widen_f16_row(w.w.row<const uint16_t>(r0 + i) + c0, n_cols, out); break;
      case DType::f8_e4m3: widen_fp8_row(w, r0 + i, c0, n_cols, out); break;
      default: break;  // rejected by check_problem
    }
  }
}

void transpose_to_panel(const float* src, int64_t src_stride, int64_t n_cols, float* panel) {
  for (int64_t p = 0; p < n_cols; p += 8) {
    for (int g = 0; g < kNr; g += 8) {
      const float* s = src + g * src_stride + p;
      __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + src_stride),
             r2 = _mm256_loadu_ps(s + 2 * src_stride), r3 = _mm256_loadu_ps(s + 3 * src_stride),
             r4 = _mm256_loadu_ps(s + 4 * src_stride), r5 = _mm256_loadu_ps(s + 5 * src_stride),
             r6 = _mm256_loadu_ps(s + 6 * src_stride), r7 = _mm256_loadu_ps(s + 7 * src_stride);
      // Pairs, then quads within 128-bit lanes, then swap lanes: column q of the 8x8 block.
      __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
      __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
      __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
      __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
      __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
      __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
      __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
      __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
      float* d = panel + p * kNr + g;
      _mm256_store_ps(d + 0 * kNr, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_store_ps(d + 1 * kNr, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_store_ps(d + 2 * kNr, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_store_ps(d + 3 * kNr, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_store_ps(d + 4 * kNr, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_store_ps(d + 5 * kNr, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_store_ps(d + 6 * kNr, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_store_ps(d + 7 * kNr, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  }
}

bool pack_panel(const Weight& w, int64_t r0, int64_t c0, int64_t kc, float* panel, void* scratch) {
  const DType dtype = w.w.dtype;
  if (dtype != DType::bf16 && dtype != DType::f16) return false;
  // The 16 rows are copied out first: rows of a power-of-two stride (hidden sizes are) would
  // share L1 sets, and 16 of them thrash an 8-way cache when read side by side. The copy's
  // stride is kc + 8 elements.
  auto* rows = static_cast<uint16_t*>(scratch);
  const int64_t stride = kc + 8;
  for (int j = 0; j < kNr; ++j)
    std::memcpy(rows + j * stride, w.w.row<const uint16_t>(r0 + j) + c0, size_t(kc) * 2);
  // Eight 16-bit words of 16 rows per column step: row pairs share a register (one per 128-bit
  // lane), a three-stage unpack transposes both 8x8 lanes at once, then each column widens.
  // BF16 widens by unpacking with zero, which interleaves the lanes' halves: so lane 0 takes
  // rows {0-3, 8-11} and lane 1 rows {4-7, 12-15}. F16 widens each lane: rows 0-7 | 8-15.
  static constexpr int kBf16Lane0[8] = {0, 1, 2, 3, 8, 9, 10, 11},
                       kBf16Lane1[8] = {4, 5, 6, 7, 12, 13, 14, 15};
  const bool bf16 = dtype == DType::bf16;
  const uint16_t* lane0[8];
  const uint16_t* lane1[8];
  for (int i = 0; i < 8; ++i) {
    lane0[i] = rows + (bf16 ? kBf16Lane0[i] : i) * stride;
    lane1[i] = rows + (bf16 ? kBf16Lane1[i] : i + 8) * stride;
  }
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t p = 0; p < kc; p += 8) {
    __m256i v[8];
    for (int i = 0; i < 8; ++i)
      v[i] = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lane0[i] + p))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(lane1[i] + p)), 1);
    __m256i t[8], u[8], c[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_epi16(v[2 * i], v[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_epi16(v[2 * i], v[2 * i + 1]);
    }
    for (int h = 0; h < 2; ++h) {  // rows 0-3 of the lane, then rows 4-7
      u[4 * h + 0] = _mm256_unpacklo_epi32(t[4 * h + 0], t[4 * h + 2]);
      u[4 * h + 1] = _mm256_unpackhi_epi32(t[4 * h + 0], t[4 * h + 2]);
      u[4 * h + 2] = _mm256_unpacklo_epi32(t[4 * h + 1], t[4 * h + 3]);
      u[4 * h + 3] = _mm256_unpackhi_epi32(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int q = 0; q < 4; ++q) {  // column 2q and 2q + 1: the lane's 8 rows
      c[2 * q] = _mm256_unpacklo_epi64(u[q], u[q + 4]);
      c[2 * q + 1] = _mm256_unpackhi_epi64(u[q], u[q + 4]);
    }
    float* d = panel + p * kNr;
    for (int q = 0; q < 8; ++q) {
      __m256 lo, hi;
      if (bf16) {
        lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, c[q]));
        hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, c[q]));
      } else {
        lo = _mm256_cvtph_ps(_mm256_castsi256_si128(c[q]));
        hi = _mm256_cvtph_ps(_mm256_extracti128_si256(c[q], 1));
      }
      _mm256_store_ps(d + q * kNr, lo);
      _mm256_store_ps(d + q * kNr + 8, hi);
    }
  }
  return true;
}

bool pack_panel_rows(const Weight& w, int64_t r0, int64_t n_rows, int64_t c0, int n_panels, float* panels,
                     int64_t panel_stride) {
  // Row by row, all panels at once: the panels' pieces of a row share its cache lines.
  const Tensor& t = w.w;
  auto pack = [&](auto widen8) {
    for (int64_t p = 0; p < n_rows; ++p)
      for (int q = 0; q < n_panels; ++q) {
        float* d = panels + q * panel_stride + p * kNr;
        const int64_t c = c0 + q * kNr;
        _mm256_store_ps(d, widen8(r0 + p, c));
        _mm256_store_ps(d + 8, widen8(r0 + p, c + 8));
      }
  };
  switch (t.dtype) {
    case DType::f32:
      pack([&](int64_t r, int64_t c) { return LoadF32::vec(t.row<const float>(r) + c); });
      break;
    case DType::bf16:
      pack([&](int64_t r, int64_t c) { return LoadBf16::vec(t.row<const uint16_t>(r) + c); });
      break;
    case DType::f16:
      pack([&](int64_t r, int64_t c) { return LoadF16::vec(t.row<const uint16_t>(r) + c); });
      break;
    case DType::f8_e4m3:
      if (w.block_cols % 8 != 0) return false;  // a vector would straddle two scale blocks
      pack([&](int64_t r, int64_t c) {
        const float* scales = w.scale.row<const float>((r + w.row_offset) / w.block_rows);
        return fp8x8_widen(t.row<const uint8_t>(r) + c, scales[c / w.block_cols]);
      });
      break;
    default: return false;
  }
  return true;
}

void micro_tile(int n_tok, int n_out, int64_t kc, const float* x, int64_t x_stride, const float* panel,
                float* y, int64_t y_stride, bool accumulate) {
  switch (n_tok) {
    case 1: micro_tile_mr<1>(n_out, kc, x, x_stride, panel, y, y_stride, accumulate); break;
    case 2: micro_tile_mr<2>(n_out, kc, x, x_stride, panel, y, y_stride, accumulate); break;
    case 3: micro_tile_mr<3>(n_out, kc, x, x_stride, panel, y, y_stride, accumulate); break;
    case 4: micro_tile_mr<4>(n_out, kc, x, x_stride, panel, y, y_stride, accumulate); break;
    case 5: micro_tile_mr<5>(n_out, kc, x, x_stride, panel, y, y_stride, accumulate); break;
    default: micro_tile_mr<6>(n_out, kc, x, x_stride, panel, y, y_stride, accumulate); break;
  }
}

bool dot_tile(int n_rows, int n_tok, int64_t kc, const void* w, DType w_dtype, int64_t w_stride,
              const Fp8Folds& fp8, const float* x, int64_t x_stride, float* y, int64_t y_stride,
              bool accumulate) {
  switch (w_dtype) {
    case DType::bf16:
      return dot_tile_as<LoadBf16>(n_rows, n_tok, kc, w, w_stride, fp8, x, x_stride, y, y_stride, accumulate);
    case DType::f16:
      return dot_tile_as<LoadF16>(n_rows, n_tok, kc, w, w_stride, fp8, x, x_stride, y, y_stride, accumulate);
    case DType::f8_e4m3:
      return dot_tile_as<LoadFp8>(n_rows, n_tok, kc, w, w_stride, fp8, x, x_stride, y, y_stride, accumulate);
    default:
      return dot_tile_as<LoadF32>(n_rows, n_tok, kc, w, w_stride, fp8, x, x_stride, y, y_stride, accumulate);
  }
}

}  // namespace dsi::cpu::gemm_detail

#endif  // DSI_GEMM_AVX2
