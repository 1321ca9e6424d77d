// The three routing methods of MATH.md "MoE", checked on inputs whose answer follows by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace dsi {
namespace {

struct Routed {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

Routed route(const std::vector<float>& logits, const std::vector<float>& bias, const RoutingParams& p) {
  Routed r{std::vector<int32_t>(size_t(p.top_k)), std::vector<float>(size_t(p.top_k))};
  cpu::route_token(logits, bias, p, r.ids, r.weights);
  return r;
}

RoutingParams softmax_params(int n_experts, int k, RoutingGroupScore group, int n_group, int topk_group) {
  return {n_experts, k, n_group, topk_group, RoutingScore::routing_score_softmax, group, false, false, 1.0f};
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

TEST(Routing, GreedySoftmaxPicksTheTopScoresAndScalesThem) {
  std::vector<float> logits = {1, 3, 2, 0};
  auto p = softmax_params(4, 2, RoutingGroupScore::routing_group_none, 1, 1);
  p.scaling = 16;
  auto r = route(logits, {}, p);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2}));
  const float z = std::exp(1.f) + std::exp(3.f) + std::exp(2.f) + std::exp(0.f);
  EXPECT_NEAR(r.weights[0], 16 * std::exp(3.f) / z, 1e-5);
  EXPECT_NEAR(r.weights[1], 16 * std::exp(2.f) / z, 1e-5);
}

TEST(Routing, GroupLimitedGreedyStaysInsideTheBestGroups) {
  // Groups of two: g0 = {5, 0}, g1 = {4.9, 4.8}, g2 = g3 = {0, 0}; a group scores its best expert.
  std::vector<float> logits = {5, 0, 4.9f, 4.8f, 0, 0, 0, 0};
  auto one_group = route(logits, {}, softmax_params(8, 2, RoutingGroupScore::routing_group_max, 4, 1));
  EXPECT_EQ(one_group.ids, (std::vector<int32_t>{0, 1}));  // expert 2 scores higher but its group is out
  auto two_groups = route(logits, {}, softmax_params(8, 2, RoutingGroupScore::routing_group_max, 4, 2));
  EXPECT_EQ(two_groups.ids, (std::vector<int32_t>{0, 2}));
  auto greedy = route(logits, {}, softmax_params(8, 3, RoutingGroupScore::routing_group_none, 4, 1));
  EXPECT_EQ(greedy.ids, (std::vector<int32_t>{0, 2, 3}));
}

TEST(Routing, NoauxTcChoosesWithTheBiasAndWeighsWithoutIt) {
  // All logits 0: every score is sigmoid(0) = 0.5 and the bias alone decides.
  // Biased scores per group: g0 {0.8, 0.8} (sum 1.6), g1 {0.7, 0.7} (1.4), g2 {1.0, 0.1} (1.1),
  // g3 {0.5, 0.5} (1.0). Groups score the sum of their two best, so g0 and g1 survive even
  // though g2 holds the single best expert.
  std::vector<float> logits(8, 0.0f);
  std::vector<float> bias = {0.3f, 0.3f, 0.2f, 0.2f, 0.5f, -0.4f, 0, 0};
  RoutingParams p{8, 3, 4, 2, RoutingScore::routing_score_sigmoid, RoutingGroupScore::routing_group_top2_sum,
                  true, true, 2.5f};
  auto r = route(logits, bias, p);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1, 2}));  // ties (0.7, 0.7) go to the lower index
  for (float w : r.weights) EXPECT_NEAR(w, 2.5f / 3, 1e-6);
}

TEST(Routing, NoauxTcWeightsAreNormalisedSigmoidScores) {
  std::vector<float> logits = {2, -1, 0.5f, 1, -2, 0, 3, -0.5f};
  std::vector<float> bias(8, 0.0f);
  RoutingParams p{8, 2, 1, 1, RoutingScore::routing_score_sigmoid, RoutingGroupScore::routing_group_top2_sum, true,
                  true, 2.5f};
  auto r = route(logits, bias, p);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{6, 0}));
  const float a = sigmoid(3), b = sigmoid(2);
  EXPECT_NEAR(r.weights[0], 2.5f * a / (a + b), 1e-6);
  EXPECT_NEAR(r.weights[1], 2.5f * b / (a + b), 1e-6);
  p.normalize = false;
  auto raw = route(logits, bias, p);
  EXPECT_NEAR(raw.weights[0], 2.5f * a, 1e-6);
}

TEST(Routing, NegativeBiasedScoresInDroppedGroupsAreNeverChosen) {
  // Kept group g1 has biased scores below zero; dropped experts must still not be chosen.
  std::vector<float> logits(4, 0.0f);
  std::vector<float> bias = {-0.9f, -0.95f, -0.55f, -0.56f};
  RoutingParams p{4, 2, 2, 1, RoutingScore::routing_score_sigmoid, RoutingGroupScore::routing_group_top2_sum, true,
                  true, 1.0f};
  auto r = route(logits, bias, p);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{2, 3}));
}

}  // namespace
}  // namespace dsi
