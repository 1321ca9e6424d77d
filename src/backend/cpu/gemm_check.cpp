// Checks of the GEMM entry points: every way a caller can get shapes, dtypes, strides or scales
// wrong becomes a dsi::Error naming the operand, before any output is written.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/cpu/gemm_detail.h"
#include "core/error.h"
#include "core/int_math.h"

namespace dsi::cpu::gemm_detail {
namespace {


void check_matrix(const Tensor& t, std::string_view op, std::string_view name) {
  if (t.rows < 0 || t.cols < 0) fail("{}: {} has a negative shape [{}, {}]", op, name, t.rows, t.cols);
  if (t.rows > 1 && t.row_stride < t.cols)
    fail("{}: {} has row stride {} smaller than its {} columns", op, name, t.row_stride, t.cols);
  if (t.numel() > 0 && t.data == nullptr) fail("{}: {} [{}, {}] has no data", op, name, t.rows, t.cols);
}

void check_f32_matrix(const Tensor& t, std::string_view op, std::string_view name) {
  if (t.dtype != DType::f32) fail("{}: {} must be F32, got {}", op, name, dtype_name(t.dtype));
  check_matrix(t, op, name);
}

void check_weight(const Weight& w, std::string_view op) {
  const DType t = w.w.dtype;
  if (t != DType::f32 && t != DType::bf16 && t != DType::f16 && t != DType::f8_e4m3)
    fail("{}: weight dtype {} is not supported (F32, BF16, F16 or F8_E4M3)", op, dtype_name(t));
  check_matrix(w.w, op, "weight");
  if (t != DType::f8_e4m3) {
    if (w.quantized())
      fail("{}: a {} weight cannot have block scales (only F8_E4M3 weights do)", op, dtype_name(t));
    return;
  }
  if (!w.quantized()) fail("{}: F8_E4M3 weight [{}, {}] has no block scales", op, w.rows(), w.cols());
  if (w.block_rows <= 0 || w.block_cols <= 0)
    fail("{}: F8_E4M3 block size must be positive, got {}x{}", op, w.block_rows, w.block_cols);
  if (w.row_offset < 0) fail("{}: weight row offset {} is negative", op, w.row_offset);
  check_f32_matrix(w.scale, op, "weight scale");
  const int64_t need_rows = ceil_div(w.row_offset + w.rows(), w.block_rows);
  const int64_t need_cols = ceil_div(w.cols(), w.block_cols);
  if (w.rows() > 0 && w.cols() > 0 && (w.scale.rows < need_rows || w.scale.cols < need_cols))
    fail("{}: F8_E4M3 weight rows [{}, {}) x {} columns in {}x{} blocks need scales [{}, {}], got [{}, {}]",
         op, w.row_offset, w.row_offset + w.rows(), w.cols(), w.block_rows, w.block_cols, need_rows,
         need_cols, w.scale.rows, w.scale.cols);
}

// The bytes a matrix view can touch, [begin, end); empty when it has no elements.
struct ByteRange {
  uintptr_t begin = 0, end = 0;
  bool output = false;
};

ByteRange byte_range(const Tensor& t, bool output) {
  if (t.numel() == 0) return {0, 0, output};
  const auto begin = reinterpret_cast<uintptr_t>(t.data);
  const int64_t n_elems = (t.rows - 1) * t.row_stride + t.cols;
  return {begin, begin + uintptr_t(n_elems) * dtype_size(t.dtype), output};
}

}  // namespace

void check_problem(const GemmProblem& p, std::string_view op) {
  check_f32_matrix(p.x, op, "x");
  check_f32_matrix(p.y, op, "y");
  check_weight(p.w, op);
  // In the forward product the weight's columns meet x; transposed, its rows do.
  const int64_t n_in = p.transposed ? p.w.rows() : p.w.cols();
  const int64_t n_out = p.transposed ? p.w.cols() : p.w.rows();
  if (p.x.cols != n_in)
    fail("{}: x [{}, {}] needs {} columns to meet the [{}, {}] weight{}", op, p.x.rows, p.x.cols, n_in,
         p.w.rows(), p.w.cols(), p.transposed ? " from the left (x W)" : "");
  if (p.y.rows != p.x.rows || p.y.cols != n_out)
    fail("{}: y must be [{}, {}] for x [{}, {}] and weight [{}, {}], got [{}, {}]", op, p.x.rows, n_out,
         p.x.rows, p.x.cols, p.w.rows(), p.w.cols(), p.y.rows, p.y.cols);
}

void check_no_overlap(std::span<const GemmProblem> problems, std::string_view op) {
  // Sweep the ranges by start: an output may not begin before the end of any earlier range,
  // and nothing may begin before the end of an earlier output.
  thread_local std::vector<ByteRange> ranges;  // reused: no allocation per call once grown
  ranges.clear();
  for (const GemmProblem& p : problems) {
    if (p.x.rows == 0) continue;
    for (ByteRange r : {byte_range(p.y, true), byte_range(p.x, false), byte_range(p.w.w, false),
                        byte_range(p.w.scale, false)})
      if (r.end > r.begin) ranges.push_back(r);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.begin < b.begin; });
  uintptr_t end_any = 0, end_output = 0;
  for (const ByteRange& r : ranges) {
    if (r.begin < (r.output ? end_any : end_output))
      fail(
          "{}: an output overlaps {} (outputs must not share memory with any input or other "
          "output)",
          op, r.output ? "another operand" : "an input");
    end_any = std::max(end_any, r.end);
    if (r.output) end_output = std::max(end_output, r.end);
  }
}

}  // namespace dsi::cpu::gemm_detail
