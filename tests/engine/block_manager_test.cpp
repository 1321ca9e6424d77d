#include "kvcache/block_manager.h"

#include <gtest/gtest.h>

#include "core/error.h"

#include <numeric>

namespace dsi {
namespace {

std::vector<int32_t> iota_tokens(int n, int start = 100) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), start);
  return t;
}

// Fills `blocks` with the full blocks of `tokens` and registers them, as the scheduler does.
std::vector<int32_t> compute(KvBlockManager& m, const std::vector<int32_t>& tokens) {
  std::vector<int32_t> table;
  uint64_t parent = kKvRootHash;
  const int bs = m.block_size();
  for (size_t b = 0; b * size_t(bs) < tokens.size(); ++b) {
    table.push_back(*m.allocate());
    if ((b + 1) * size_t(bs) <= tokens.size()) {
      auto chunk = std::span(tokens).subspan(b * size_t(bs), size_t(bs));
      uint64_t h = kv_block_hash(parent, chunk);
      m.register_full_block(table.back(), h, parent, chunk);
      parent = h;
    }
  }
  return table;
}

TEST(KvBlockManager, AllocatesUntilFullAndFreesOnRelease) {
  KvBlockManager m(4, 16, false);
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(*m.allocate());
  EXPECT_FALSE(m.allocate().has_value());
  EXPECT_EQ(m.stats().n_used, 4);
  m.release(got);
  EXPECT_EQ(m.stats().n_free, 4);
  EXPECT_EQ(m.n_available(), 4);
}

TEST(KvBlockManager, SharesFullPrefixBlocks) {
  KvBlockManager m(8, 4, true);
  auto tokens = iota_tokens(10);  // two full blocks and a partial one
  auto table = compute(m, tokens);
  auto again = m.match_prefix(tokens, 100);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0], table[0]);
  EXPECT_EQ(again[1], table[1]);
  EXPECT_EQ(m.ref_count(table[0]), 2);
  EXPECT_EQ(m.stats().prefix_hit_tokens, 8);
  // A different second block shares only the first.
  auto other = tokens;
  other[5] = 7;
  EXPECT_EQ(m.match_prefix(other, 100).size(), 1u);
  // max_blocks caps the match (the scheduler keeps at least one token to compute).
  EXPECT_EQ(m.match_prefix(tokens, 1).size(), 1u);
}

TEST(KvBlockManager, ReleasedPrefixStaysCachedUntilEvictedLeastRecentFirst) {
  KvBlockManager m(4, 2, true);
  auto a = iota_tokens(2, 0), b = iota_tokens(2, 50);
  auto ta = compute(m, a);
  auto tb = compute(m, b);
  m.release(ta);
  m.release(tb);
  EXPECT_EQ(m.stats().n_cached, 2);
  EXPECT_EQ(m.stats().n_free, 2);
  // Two free blocks go first, then the least recently released cached block (a's).
  m.allocate();
  m.allocate();
  auto evicting = m.allocate();
  ASSERT_TRUE(evicting.has_value());
  EXPECT_EQ(*evicting, ta[0]);
  EXPECT_TRUE(m.match_prefix(a, 10).empty());
  EXPECT_EQ(m.match_prefix(b, 10).size(), 1u);
}

TEST(KvBlockManager, TokensAreComparedNotJustHashes) {
  KvBlockManager m(4, 2, true);
  auto a = iota_tokens(2);
  auto t = m.allocate();
  // Registered under a's hash but holding other tokens: a lookup of a must not match it.
  m.register_full_block(*t, kv_block_hash(kKvRootHash, a), kKvRootHash, std::vector<int32_t>{9, 9});
  EXPECT_TRUE(m.match_prefix(a, 10).empty());
}

TEST(KvBlockManager, ReleasingTwiceIsAnError) {
  KvBlockManager m(2, 2, false);
  auto b = *m.allocate();
  m.release(std::vector<int32_t>{b});
  EXPECT_THROW(m.release(std::vector<int32_t>{b}), Error);
}

}  // namespace
}  // namespace dsi
