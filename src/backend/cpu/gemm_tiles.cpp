// The two tile executors of the CPU GEMM (see gemm.cpp for how products are cut into tiles).
//
// - dot (few tokens, decoding): the weight is the traffic. The tile streams its weight rows
//   once, start to end, kDotRows at a time, and the dot kernel widens them in registers and
//   dots them with every token. FP8 rows whose scales the kernel cannot fold exactly, or with
//   scale blocks not of whole vectors, are widened into an L1 buffer first.
// - packed (many tokens, prefill): the FMAs are the work. Per contraction chunk the tile widens
//   its kNr outputs once into a [chunk, kNr] float32 panel that stays in L1 and runs the
//   kMr x kNr register-tile kernel over all its tokens, while the next chunk is prefetched.
//   linear_transposed packs the same panels from W's other side (its rows are already [k, n]).
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <memory>
#include <new>

#include "backend/cpu/gemm_detail.h"
#include "core/int_math.h"

namespace dsi::cpu::gemm_detail {
namespace {

// Contraction chunk of the packed path: a panel of 256 x kNr floats is 16 KiB (L1).
constexpr int64_t kKcPacked = 256;
// Contraction chunk of the dot path where it widens rows first: kDotRows widened rows of 512
// floats are 16 KiB (L1).
constexpr int64_t kKcDot = 512;
// Folded fp8 scales the dot path keeps per row group: 512 scale blocks of kDotRows rows.
constexpr int64_t kFoldFloats = 4096;
// One packed panel: kKcPacked x kNr floats.
constexpr int64_t kPanelFloats = kKcPacked * kNr;
// Scratch per thread: the packed path's panels (forward: one, plus kNr widened rows before the
// transpose), or the dot path's widened rows plus folded scales.
constexpr size_t kScratchFloats =
    size_t(std::max({kPackedPanels * kPanelFloats, 2 * kPanelFloats, kDotRows* kKcDot + kFoldFloats}));


// 64-byte aligned scratch of kScratchFloats, one per thread, kept for the thread's life.
float* thread_scratch() {
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  thread_local std::unique_ptr<float[], Free> buffer(
      static_cast<float*>(::operator new[](kScratchFloats * sizeof(float), std::align_val_t{64})));
  return buffer.get();
}

// Widens W[out0 + j][kc0 + p] into panel[p * kNr + j], zero where j >= n_out.
void pack_forward(const Weight& w, int64_t out0, int n_out, int64_t kc0, int64_t kc, float* rows,
                  float* panel) {
  if (n_out == kNr && kc % 8 == 0 && pack_panel(w, out0, kc0, kc, panel, rows)) return;
  widen(w, out0, n_out, kc0, kc, rows, kKcPacked);
  // The transpose reads whole 8-column blocks of all kNr rows: pad with zeros.
  const int64_t kc8 = round_up(kc, 8);
  for (int j = 0; j < kNr; ++j)
    std::fill(rows + j * kKcPacked + (j < n_out ? kc : 0), rows + j * kKcPacked + kc8, 0.0f);
  transpose_to_panel(rows, kKcPacked, kc, panel);
}

// Widens W[kc0 + p][out0 + q * kNr + j] into panel q, panels[q * kPanelFloats + p * kNr + j],
// zero where q * kNr + j >= n_out.
void pack_transposed(const Weight& w, int64_t out0, int n_out, int64_t kc0, int64_t kc, float* panels) {
  int q = n_out / kNr;  // full panels
  if (!pack_panel_rows(w, kc0, kc, out0, q, panels, kPanelFloats)) q = 0;
  for (; q * kNr < n_out; ++q) {
    float* panel = panels + q * kPanelFloats;
    const int n = std::min(kNr, n_out - q * kNr);
    widen(w, kc0, kc, out0 + q * kNr, n, panel, kNr);
    if (n < kNr)
      for (int64_t p = 0; p < kc; ++p) std::fill(panel + p * kNr + n, panel + (p + 1) * kNr, 0.0f);
  }
}

// Asks for W[r0, r0 + n_rows) x [c0, c0 + n_cols) to be brought into cache. The packed path
// widens a chunk, then computes on it without touching memory: fetching the next chunk
// meanwhile keeps memory busy through both.
void prefetch_block(const Weight& w, int64_t r0, int64_t n_rows, int64_t c0, int64_t n_cols) {
  const int64_t elem = int64_t(dtype_size(w.w.dtype));
  for (int64_t r = r0; r < r0 + n_rows; ++r) {
    const char* begin = static_cast<const char*>(w.w.data) + (r * w.w.row_stride + c0) * elem;
    for (int64_t off = 0; off < n_cols * elem; off += 64) __builtin_prefetch(begin + off);
    __builtin_prefetch(begin + n_cols * elem - 1);
  }
}

// Whether the dot kernel can read this fp8 weight in place: scale blocks of whole vectors
// (otherwise its rows are widened into a buffer first).
bool fp8_in_place(const Weight& w) { return w.block_cols % 8 == 0; }

// Folds the scales of rows [r, r + n_rows) x blocks [c0 / block_cols, + n_blocks) of an fp8
// weight for the dot kernel. False where a folded scale overflows (|scale| >= 2^8; the
// widening path handles those exactly).
bool fold_fp8_scales(const Weight& w, int64_t r, int n_rows, int64_t c0, int64_t n_blocks, float* fold) {
  bool finite = true;
  for (int i = 0; i < n_rows; ++i) {
    const float* scales = w.scale.row<const float>((r + i + w.row_offset) / w.block_rows);
    for (int64_t b = 0; b < n_blocks; ++b) {
      const float s = scales[c0 / w.block_cols + b];
      fold[i * n_blocks + b] = s * kFp8ShiftCompensation;
      finite &= std::isfinite(fold[i * n_blocks + b]) || !std::isfinite(s);
    }
  }
  return finite;
}

// Rows [r, r + n_rows) x columns [c0, c0 + n_cols) of the product, every token, reading
// weights in place from w (already offset to row r, column c0) as `dtype`.
void dot_in_place(const GemmProblem& p, int64_t r, int n_rows, int64_t c0, int64_t n_cols, const void* w,
                  DType dtype, int64_t w_stride, const Fp8Folds& fp8, bool accumulate) {
  bool nan = false;
  for (int64_t t = 0; t < p.x.rows; t += kDotTokens)
    nan |= dot_tile(n_rows, int(std::min<int64_t>(kDotTokens, p.x.rows - t)), n_cols, w, dtype, w_stride, fp8,
                    p.x.row<const float>(t) + c0, p.x.row_stride, p.y.row<float>(t) + r, p.y.row_stride,
                    accumulate);
  if (!nan) return;
  // A NaN weight makes its row's sums NaN for every token (even times zero); later pieces of
  // the row add to NaN and keep it.
  for (int i = 0; i < n_rows; ++i) {
    const uint8_t* codes = static_cast<const uint8_t*>(w) + i * w_stride;
    if (std::any_of(codes, codes + n_cols, [](uint8_t q) { return (q & 0x7f) == 0x7f; }))
      for (int64_t t = 0; t < p.x.rows; ++t) p.y.row<float>(t)[r + i] = std::nanf("");
  }
}

// The same, widening kKcDot columns at a time into `buffer` (kDotRows x kKcDot floats).
void dot_widened(const GemmProblem& p, int64_t r, int n_rows, int64_t c0, int64_t n_cols, float* buffer,
                 bool accumulate) {
  for (int64_t kc0 = c0; kc0 < c0 + n_cols; kc0 += kKcDot) {
    const int64_t kc = std::min(kKcDot, c0 + n_cols - kc0);
    widen(p.w, r, n_rows, kc0, kc, buffer, kKcDot);
    dot_in_place(p, r, n_rows, kc0, kc, buffer, DType::f32, kKcDot, {}, accumulate || kc0 > c0);
  }
}

}  // namespace

void run_packed_tile(const GemmProblem& p, int64_t out0, int n_out, int64_t tok0, int64_t n_tok) {
  const int64_t k = p.transposed ? p.w.rows() : p.w.cols();
  float* panels = thread_scratch();
  float* rows = panels + kPanelFloats;  // forward: kNr widened rows before the transpose
  for (int64_t kc0 = 0; kc0 < k; kc0 += kKcPacked) {
    const int64_t kc = std::min(kKcPacked, k - kc0);
    if (p.transposed) pack_transposed(p.w, out0, n_out, kc0, kc, panels);
    else pack_forward(p.w, out0, n_out, kc0, kc, rows, panels);
    if (const int64_t next = std::min(kKcPacked, k - kc0 - kc); next > 0) {
      if (p.transposed) prefetch_block(p.w, kc0 + kc, next, out0, n_out);
      else prefetch_block(p.w, out0, n_out, kc0 + kc, next);
    }
    for (int q = 0; q * kNr < n_out; ++q)
      for (int64_t t = tok0; t < tok0 + n_tok; t += kMr)
        micro_tile(int(std::min<int64_t>(kMr, tok0 + n_tok - t)), std::min(kNr, n_out - q * kNr), kc,
                   p.x.row<const float>(t) + kc0, p.x.row_stride, panels + q * kPanelFloats,
                   p.y.row<float>(t) + out0 + q * kNr, p.y.row_stride, kc0 > 0);
  }
}

// The dot path: each weight row is streamed once, start to end (long runs for the hardware
// prefetcher), kDotRows rows at a time, and dotted with every token.
void run_dot_tile(const GemmProblem& p, int64_t out0, int64_t n_out) {
  const Weight& w = p.w;
  const int64_t k = w.cols();
  const DType dtype = w.w.dtype;
  const auto* base = static_cast<const uint8_t*>(w.w.data);
  const int64_t elem = int64_t(dtype_size(dtype));
  float* buffer = thread_scratch();          // widened rows, when needed
  float* fold = buffer + kDotRows * kKcDot;  // folded fp8 scales
  // Columns per fp8 piece: as many whole scale blocks as `fold` holds for kDotRows rows.
  const int64_t fp8_piece = kFoldFloats / kDotRows * int64_t(w.block_cols);
  for (int64_t r = out0; r < out0 + n_out; r += kDotRows) {
    const int n_rows = int(std::min<int64_t>(kDotRows, out0 + n_out - r));
    const uint8_t* row = base + r * w.w.row_stride * elem;
    if (dtype != DType::f8_e4m3) {
      dot_in_place(p, r, n_rows, 0, k, row, dtype, w.w.row_stride, {}, false);
    } else if (!fp8_in_place(w)) {
      dot_widened(p, r, n_rows, 0, k, buffer, false);
    } else {
      for (int64_t c0 = 0; c0 < k; c0 += fp8_piece) {
        const int64_t n_cols = std::min(fp8_piece, k - c0);
        const Fp8Folds folds{fold, ceil_div(n_cols, w.block_cols), w.block_cols};
        // Scales of 2^8 or more (never in real checkpoints) take the exact widening path.
        if (fold_fp8_scales(w, r, n_rows, c0, folds.n_blocks, fold))
          dot_in_place(p, r, n_rows, c0, n_cols, row + c0, dtype, w.w.row_stride, folds, c0 > 0);
        else dot_widened(p, r, n_rows, c0, n_cols, buffer, c0 > 0);
      }
    }
  }
}

}  // namespace dsi::cpu::gemm_detail
