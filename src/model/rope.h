#pragma once
// Rotary embedding frequencies of a config, plain or YaRN (MATH.md "Rotary embedding").
#include <vector>

#include "model/config.h"

namespace dsi {

struct RopeTable {
  std::vector<float> inv_freq;  // [qk_rope_head_dim / 2]
  float attention_factor = 1;   // multiplies cos and sin
};

RopeTable make_rope_table(const ModelConfig& c);

}  // namespace dsi
