#pragma once
// Internal interface between the gemm files of backend/cpu.
//
// The leaf kernels under gemm.cpp's tiling are implemented twice with one interface: AVX2/FMA/
// F16C intrinsics (gemm_avx2.cpp) and portable scalar code (gemm_portable.cpp). Exactly one of
// the two is compiled in, chosen by the target ISA or forced portable with DSI_GEMM_PORTABLE
// (the tests build both). Every kernel is safe to call from many threads at once on disjoint
// outputs.
#include <cstdint>
#include <span>
#include <string_view>

#include "backend/cpu/gemm.h"
#include "core/tensor.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && !defined(DSI_GEMM_PORTABLE)
#define DSI_GEMM_AVX2 1
#else
#define DSI_GEMM_AVX2 0
#endif

namespace dsi::cpu::gemm_detail {

// Register tile of the packed kernel: kMr tokens x kNr outputs (two 8-float vectors).
inline constexpr int kMr = 6;
inline constexpr int kNr = 16;
// Most tokens the dot kernel takes at once; the rows per call are at most kDotRows.
inline constexpr int kDotTokens = 4;
inline constexpr int kDotRows = 8;

// Widens the block W[r0 + i][c0 + j], i < n_rows, j < n_cols, to float32 exactly (an fp8 code
// times its block scale is rounded once, NaN codes 0x7f / 0xff give NaN):
//   dst[i * dst_stride + j].
void widen(const Weight& w, int64_t r0, int64_t n_rows, int64_t c0, int64_t n_cols, float* dst,
           int64_t dst_stride);

// Transposes a kNr-row block into a packed panel: panel[p * kNr + j] = src[j * src_stride + p]
// for j < kNr and p < n_cols rounded up to a multiple of 8 (src must hold that many columns).
void transpose_to_panel(const float* src, int64_t src_stride, int64_t n_cols, float* panel);

// Packs W[r0 + j][c0 + p], j < kNr, p < kc (a multiple of 8), into panel[p * kNr + j] as
// widen() then transpose_to_panel() would, but cheaper, using scratch (kNr * (kc + 8) * 2
// bytes). Returns false, doing nothing, where this build has no such packing for the dtype.
bool pack_panel(const Weight& w, int64_t r0, int64_t c0, int64_t kc, float* panel, void* scratch);

// Packs n_panels panels of linear_transposed: W[r0 + p][c0 + q * kNr + j], p < n_rows,
// j < kNr, into panels[q * panel_stride + p * kNr + j], as widen() would. Returns false, doing
// nothing, where this build has no such packing for the weight.
bool pack_panel_rows(const Weight& w, int64_t r0, int64_t n_rows, int64_t c0, int n_panels, float* panels,
                     int64_t panel_stride);

// The packed kernel: y[i][j] (+)= sum_{p < kc} x[i * x_stride + p] * panel[p * kNr + j]
// for i < n_tok <= kMr, j < n_out <= kNr; adds to y when accumulate, else overwrites it.
void micro_tile(int n_tok, int n_out, int64_t kc, const float* x, int64_t x_stride, const float* panel,
                float* y, int64_t y_stride, bool accumulate);

// Block scales of fp8 rows read in place by the dot kernel: row r's b-th block of block_cols
// columns (counted from the kernel's first column) has fold[r * n_blocks + b] = its scale times
// 2^120 (kFp8ShiftCompensation), which must be finite unless the scale is not.
struct Fp8Folds {
  const float* fold = nullptr;
  int64_t n_blocks = 0;
  int64_t block_cols = 0;  // a multiple of 8
};

// The dot kernel for few tokens: y[t * y_stride + r] (+)= sum_{p < kc} x[t * x_stride + p] *
// w[r * w_stride + p] for t < n_tok <= kDotTokens and r < n_rows <= kDotRows, reading the
// weight rows in place as w_dtype: F32, BF16, F16 (exact widening, as widen()) or F8_E4M3
// scaled by `fp8`. fp8 NaN codes are not widened to NaN here; the return value says whether
// the rows hold any (the caller then makes those rows' outputs NaN, as any NaN term makes a
// sum).
bool dot_tile(int n_rows, int n_tok, int64_t kc, const void* w, DType w_dtype, int64_t w_stride,
              const Fp8Folds& fp8, const float* x, int64_t x_stride, float* y, int64_t y_stride,
              bool accumulate);

// Tile executors (gemm_tiles.cpp) on outputs [out0, out0 + n_out) of a checked problem with
// k > 0. The dot path takes all tokens (at most a few) and only forward products; the packed
// path takes at most kNr outputs forward, kPackedPanels * kNr transposed.
inline constexpr int kPackedPanels = 4;
void run_dot_tile(const GemmProblem& p, int64_t out0, int64_t n_out);
void run_packed_tile(const GemmProblem& p, int64_t out0, int n_out, int64_t tok0, int64_t n_tok);

// Checks of the entry points (gemm_check.cpp); they throw dsi::Error naming the problem.
// One problem's dtypes, shapes, strides and scales; `op` names it in messages ("linear").
void check_problem(const GemmProblem& problem, std::string_view op);
// No output overlaps another output or any input (the weights and scales included).
void check_no_overlap(std::span<const GemmProblem> problems, std::string_view op);

}  // namespace dsi::cpu::gemm_detail
