// The tie-aware greedy comparison (greedy_compare.h) accepts a differing token only at a
// near-tie of the reference, stops at the first accepted divergence, and rejects the rest.
#include "greedy_compare.h"

#include <gtest/gtest.h>

#include <vector>

namespace dsi::test {
namespace {

// Three positions over a vocabulary of 4: reference tokens 2, 0, 3.
// Position 0: clear winner (margin 1.0). Position 1: near tie of tokens 0 and 1 (margin 1e-6),
// token 3 far behind. Position 2: clear winner.
const std::vector<float> kLogits = {0.0f, 0.5f, 1.5f, -1.0f,   //
                                    2.0f, 2.0f - 1e-6f, 0.0f, 1.9f,  //
                                    0.1f, 0.2f, 0.3f, 3.0f};
const std::vector<int32_t> kRef = {2, 0, 3};
constexpr int64_t kVocab = 4;
constexpr float kBound = 1e-4f;

GreedyComparison compare(const std::vector<int32_t>& candidate, float bound = kBound) {
  return compare_greedy_tie_aware(kLogits, kVocab, kRef, candidate, bound);
}

TEST(GreedyCompare, EqualSequencesPass) {
  auto r = compare(kRef);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.n_equal, 3);
  EXPECT_EQ(r.accepted_at, -1);
}

TEST(GreedyCompare, DivergenceAtALargeMarginFails) {
  auto r = compare({1, 0, 3});  // position 0: gap 1.0
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.n_equal, 0);
  EXPECT_NE(r.message.find("position 0"), std::string::npos) << r.message;
  EXPECT_FALSE(compare({2, 0, 2}).ok);  // position 2: gap 2.7
}

TEST(GreedyCompare, DivergenceAtANearTieIsAcceptedAndEndsTheComparison) {
  // Token 1 instead of 0 at position 1 (gap 1e-6 < 1e-4); what follows may differ freely.
  auto r = compare({2, 1, 0});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.accepted_at, 1);
  EXPECT_EQ(r.n_equal, 1);
  // After the divergence even a different length is fine.
  EXPECT_TRUE(compare({2, 1}).ok);
}

TEST(GreedyCompare, OnlyTokensThemselvesNearTheTopAreAccepted) {
  // Position 1's top-2 margin is tiny, but token 3 is 0.1 behind the reference token.
  auto r = compare({2, 3, 3});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("not below the tie bound"), std::string::npos) << r.message;
}

TEST(GreedyCompare, BoundZeroIsExactEquality) {
  EXPECT_FALSE(compare({2, 1, 3}, 0.0f).ok);
  EXPECT_TRUE(compare(kRef, 0.0f).ok);
}

TEST(GreedyCompare, LengthMismatchWithoutDivergenceFails) {
  EXPECT_FALSE(compare({2, 0}).ok);
  EXPECT_FALSE(compare({2, 0, 3, 1}).ok);
}

TEST(GreedyCompare, BrokenReferenceFails) {
  // Reference token 1 at position 0 is not that row's argmax.
  std::vector<int32_t> ref = {1, 0, 3};
  EXPECT_FALSE(compare_greedy_tie_aware(kLogits, kVocab, ref, ref, kBound).ok);
  // Too few logits rows for the tokens.
  EXPECT_FALSE(compare_greedy_tie_aware(std::span(kLogits).first(8), kVocab, kRef, kRef, kBound).ok);
  EXPECT_FALSE(compare({2, 7, 3}).ok);  // outside the vocabulary
}

}  // namespace
}  // namespace dsi::test
