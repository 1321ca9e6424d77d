#pragma once
// Integer helpers shared by the sizing code (FP8 scale blocks, tiles, shards, KV blocks).
#include <cstdint>

namespace dsi {

// Blocks of size b that cover a (a >= 0, b > 0).
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// a rounded up to a multiple of b.
constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace dsi
