#pragma once
// Integer helpers of the sizing formulas.
#include <cstdint>

namespace dsi::plan {

// Blocks of size b that cover a (FP8 scale blocks, TP shards, experts per EP rank).
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace dsi::plan
