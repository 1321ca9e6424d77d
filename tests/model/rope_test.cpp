// YaRN frequencies from MATH.md's definition, with hand-computed values for dim 16,
// theta 10000, factor 40, original context 64 (the fixtures' shape): the correction range
// is dims [0, 3], so inv_freq[0] keeps its frequency, inv_freq[1] is one third interpolated
// and from inv_freq[3] on every frequency is divided by the factor.
#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace dsi {
namespace {

ModelConfig yarn_config(double mscale, double mscale_all_dim) {
  ModelConfig c;
  c.qk_rope_head_dim = 16;
  c.qk_nope_head_dim = 32;
  c.rope_theta = 10000;
  c.rope_scaling = YarnScaling{40, 64, 32, 1, mscale, mscale_all_dim};
  return c;
}

TEST(Yarn, FrequenciesFollowTheRamp) {
  auto t = make_rope_table(yarn_config(1.0, 1.0));
  ASSERT_EQ(t.inv_freq.size(), 8u);
  const double base1 = std::pow(10000.0, -2.0 / 16);
  EXPECT_NEAR(t.inv_freq[0], 1.0, 1e-7);
  EXPECT_NEAR(t.inv_freq[1], base1 * (1.0 / 3 / 40 + 2.0 / 3), 1e-7);
  EXPECT_NEAR(t.inv_freq[2], std::pow(10000.0, -4.0 / 16) * (2.0 / 3 / 40 + 1.0 / 3), 1e-7);
  for (int i = 3; i < 8; ++i) {
    const double want = std::pow(10000.0, -2.0 * i / 16) / 40;
    EXPECT_NEAR(t.inv_freq[size_t(i)], want, 1e-7 * want) << i;
  }
  EXPECT_FLOAT_EQ(t.attention_factor, 1.0f);  // mscale == mscale_all_dim
}

TEST(Yarn, AttentionFactor) {
  const double g1 = 0.1 * std::log(40.0) + 1, g707 = 0.1 * 0.707 * std::log(40.0) + 1;
  EXPECT_NEAR(make_rope_table(yarn_config(1.0, 0.707)).attention_factor, g1 / g707, 1e-6);
  ModelConfig c = yarn_config(1.0, 1.0);
  c.rope_scaling->mscale.reset();
  c.rope_scaling->mscale_all_dim.reset();
  EXPECT_NEAR(make_rope_table(c).attention_factor, g1, 1e-6);
}

TEST(Rope, PlainFrequencies) {
  ModelConfig c = yarn_config(1, 1);
  c.rope_scaling.reset();
  auto t = make_rope_table(c);
  for (int i = 0; i < 8; ++i) {
    const double want = std::pow(10000.0, -2.0 * i / 16);
    EXPECT_NEAR(t.inv_freq[size_t(i)], want, 1e-7 * want);  // float32 rounding
  }
  EXPECT_EQ(t.attention_factor, 1.0f);
}

}  // namespace
}  // namespace dsi
