// docs/design/parallel.md's communication model: its table ("Communication per generated
// token") is this function's output for the published shapes, to the 0.01 MiB it prints;
// and the formulas' structure (W = 1 moves nothing, TP grows with W, the all-to-all does not).
#include <gtest/gtest.h>

#include "core/error.h"
#include "plan/comm_model.h"
#include "test_models.h"

namespace dsi::plan {
namespace {

using testing::builtin_config;

double mib(double bytes) { return bytes / double(1 << 20); }

struct Row {
  const char* model;
  int ranks;
  double tp, dp_ep, fp8;  // MiB, as the design doc's table prints them
};

TEST(CommModel, TheDesignDocsTable) {
  const Row rows[] = {
      {"deepseek-v2-lite", 2, 0.42, 0.61, 0.46}, {"deepseek-v2", 2, 2.34, 3.46, 2.59},
      {"deepseek-v3", 2, 3.34, 6.34, 4.76},      {"deepseek-v2-lite", 8, 2.95, 1.07, 0.80},
      {"deepseek-v2", 8, 16.41, 6.05, 4.54},     {"deepseek-v3", 8, 23.35, 11.10, 8.33},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(std::string(r.model) + " on " + std::to_string(r.ranks));
    const CommPerToken m = communication_per_token(builtin_config(r.model), r.ranks);
    EXPECT_NEAR(mib(m.tp_all_reduce), r.tp, 0.005);
    EXPECT_NEAR(mib(m.dp_ep_all_to_all), r.dp_ep, 0.005);
    EXPECT_NEAR(mib(m.dp_ep_fp8_dispatch), r.fp8, 0.005);
  }
}

TEST(CommModel, ExactBytesAndCollectivesForV3OnEight) {
  const ModelConfig& c = builtin_config("deepseek-v3");  // H 7168, 61 layers, 58 MoE, k 8
  const CommPerToken m = communication_per_token(c, 8);
  EXPECT_DOUBLE_EQ(m.tp_all_reduce, 61.0 * 2 * 2 * 7 * 7168 * 2);
  EXPECT_DOUBLE_EQ(m.dp_ep_all_to_all, 58.0 * 2 * 8 * 7.0 / 8 * 7168 * 2);
  EXPECT_DOUBLE_EQ(m.dp_ep_fp8_dispatch, 58.0 * 8 * 7.0 / 8 * 7168 * 3);
  EXPECT_EQ(m.tp_collectives, 122);
  EXPECT_EQ(m.ep_collectives, 116);
}

TEST(CommModel, OneRankMovesNothingAndTheAllToAllLevelsOff) {
  const ModelConfig& c = builtin_config("deepseek-v3");
  const CommPerToken one = communication_per_token(c, 1);
  EXPECT_EQ(one.tp_all_reduce, 0);
  EXPECT_EQ(one.dp_ep_all_to_all, 0);
  EXPECT_EQ(one.tp_collectives, 0);
  const CommPerToken w16 = communication_per_token(c, 16), w32 = communication_per_token(c, 32);
  EXPECT_NEAR(w32.tp_all_reduce / w16.tp_all_reduce, 31.0 / 15.0, 1e-12);  // grows with W
  EXPECT_LT(w32.dp_ep_all_to_all / w16.dp_ep_all_to_all, 1.04);             // (W-1)/W: nearly flat
  EXPECT_THROW(communication_per_token(c, 0), Error);
}

}  // namespace
}  // namespace dsi::plan
