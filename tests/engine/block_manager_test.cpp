#include "kvcache/block_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <numeric>
#include <random>

#include "core/error.h"

namespace dsi {
namespace {

std::vector<int32_t> iota_tokens(int n, int start = 100) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), start);
  return t;
}

// Fills a block table for `tokens` after `matched` (blocks match_prefix returned) and
// registers its full blocks, as the scheduler does. nullopt (and nothing held) when the cache
// has no room.
std::optional<std::vector<int32_t>> compute(KvBlockManager& m, const std::vector<int32_t>& tokens,
                                            std::vector<int32_t> matched = {}, const std::string& salt = "") {
  std::vector<int32_t> table = std::move(matched);
  const int bs = m.block_size();
  const size_t n_blocks = (tokens.size() + size_t(bs) - 1) / size_t(bs);
  while (table.size() < n_blocks) {
    auto b = m.allocate();
    if (!b) {
      m.release(table);
      return std::nullopt;
    }
    table.push_back(*b);
  }
  KvPrefixRef parent = kv_root_prefix(salt);
  for (size_t b = 0; (b + 1) * size_t(bs) <= tokens.size(); ++b)
    parent = m.register_full_block(table[b], parent, std::span(tokens).subspan(b * size_t(bs), size_t(bs)), salt);
  return table;
}

// Every block lands in one bucket: lookups must rest on the comparison alone.
uint64_t colliding_hash(KvPrefixRef, std::span<const int32_t>) { return 42; }
// Four buckets: collisions between some prefixes and not others.
uint64_t weak_hash(KvPrefixRef parent, std::span<const int32_t> tokens) { return kv_block_hash(parent, tokens) % 4; }

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
  auto table = *compute(m, tokens);
  auto again = m.match_prefix(tokens, 100);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0], table[0]);
  EXPECT_EQ(again[1], table[1]);
  EXPECT_EQ(m.ref_count(table[0]), 2);
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
  auto ta = *compute(m, a);
  auto tb = *compute(m, b);
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

TEST(KvBlockManager, AReleasedTableIsEvictedTailFirst) {
  KvBlockManager m(3, 2, true);
  auto tokens = iota_tokens(6);
  auto table = *compute(m, tokens);
  m.release(table);
  // The head survives the first evictions, so the shorter prefix stays usable.
  EXPECT_EQ(*m.allocate(), table[2]);
  EXPECT_EQ(*m.allocate(), table[1]);
  EXPECT_EQ(m.match_prefix(tokens, 10), std::vector<int32_t>{table[0]});
}

TEST(KvBlockManager, CollidingHashesNeverServeAnotherPrefix) {
  KvBlockManager m(8, 2, true, colliding_hash);
  const std::vector<int32_t> a = {1, 2, 3, 4, 9}, b = {1, 2, 5, 6, 9}, c = {7, 8, 3, 4, 9};
  auto ta = *compute(m, a);
  auto tb = *compute(m, b, m.match_prefix(b, 2));
  auto tc = *compute(m, c, m.match_prefix(c, 2));
  EXPECT_EQ(tb[0], ta[0]);  // the shared first block
  EXPECT_NE(tb[1], ta[1]);
  EXPECT_NE(tc[0], ta[0]);  // same bucket, other tokens
  EXPECT_NE(tc[1], ta[1]);  // same tokens as a's second block, other parent
  EXPECT_EQ(m.match_prefix(a, 2), (std::vector<int32_t>{ta[0], ta[1]}));
  EXPECT_EQ(m.match_prefix(b, 2), (std::vector<int32_t>{ta[0], tb[1]}));
  EXPECT_EQ(m.match_prefix(c, 2), (std::vector<int32_t>{tc[0], tc[1]}));
}

TEST(KvBlockManager, AChildOfAnEvictedParentNeverMatchesItsSuccessor) {
  // a = [1 2 | 3 4]; its head is evicted and the same block id then holds [5 6]. Matching
  // [5 6 | 3 4] must not continue into a's second block, whose keys follow [1 2].
  KvBlockManager m(3, 2, true);
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {5, 6, 3, 4};
  auto ta = *compute(m, a);
  m.release(std::vector<int32_t>{ta[0]});  // head first: the next one evicted after the free block
  m.release(std::vector<int32_t>{ta[1]});
  auto free_block = *m.allocate();
  auto reused = *m.allocate();
  ASSERT_EQ(reused, ta[0]);
  m.release(std::vector<int32_t>{free_block});
  const KvPrefixRef head = m.register_full_block(reused, kKvRootPrefix, std::span(b).first(2));
  EXPECT_EQ(head.block, ta[0]);
  EXPECT_EQ(m.match_prefix(b, 2), std::vector<int32_t>{reused});
}

// A random workload over a tiny alphabet and cache, with hashes that collide: each block's
// true contents (the whole prefix its keys were computed under) are tracked beside the
// manager, and every match must return blocks holding exactly the looked-up prefix.
TEST(KvBlockManager, RandomWorkloadWithCollisionsMatchesOnlyTruePrefixes) {
  for (KvBlockHashFn hash : {colliding_hash, weak_hash, kv_block_hash}) {
    KvBlockManager m(10, 2, true, hash);
    std::mt19937 rng(17);
    std::map<int32_t, std::vector<int32_t>> contents;  // block -> the prefix it ends
    std::vector<std::vector<int32_t>> held;
    int64_t n_hit_blocks = 0;
    for (int round = 0; round < 3000; ++round) {
      std::vector<int32_t> tokens(size_t(1 + rng() % 8));
      for (auto& t : tokens) t = int32_t(rng() % 2);
      auto matched = m.match_prefix(tokens, int64_t(tokens.size() - 1) / 2);
      for (size_t b = 0; b < matched.size(); ++b)
        ASSERT_EQ(contents[matched[b]], std::vector<int32_t>(tokens.begin(), tokens.begin() + long(2 * b + 2)))
            << "round " << round << ": block " << matched[b] << " served for another prefix";
      n_hit_blocks += int64_t(matched.size());
      const size_t n_matched = matched.size();
      auto table = compute(m, tokens, std::move(matched));
      if (!table) continue;
      for (size_t b = n_matched; b < table->size(); ++b)
        contents[(*table)[b]].assign(tokens.begin(), tokens.begin() + long(std::min(2 * b + 2, tokens.size())));
      held.push_back(std::move(*table));
      while (held.size() > 1 + rng() % 3) {
        const size_t k = rng() % held.size();
        m.release(held[k]);
        held.erase(held.begin() + long(k));
      }
    }
    EXPECT_GT(n_hit_blocks, 1000);  // the workload does exercise sharing
  }
}

// vLLM's cache_salt: blocks are shared only between sequences of equal salts, the salt
// changing the first block's hash (so every later block's parent) and compared itself.
TEST(KvBlockManager, CacheSaltsShareOnlyWithEqualSalts) {
  EXPECT_EQ(kv_root_prefix(""), kKvRootPrefix);
  EXPECT_NE(kv_root_prefix("tenant-a"), kv_root_prefix("tenant-b"));
  EXPECT_NE(kv_root_prefix("tenant-a"), kKvRootPrefix);
  auto tokens = iota_tokens(12);  // three full blocks
  const auto first = std::span(tokens).first(4);
  EXPECT_NE(kv_block_hash(kv_root_prefix("tenant-a"), first), kv_block_hash(kKvRootPrefix, first));
  EXPECT_NE(kv_block_hash(kv_root_prefix("tenant-a"), first), kv_block_hash(kv_root_prefix("tenant-b"), first));
  for (KvBlockHashFn hash : {&kv_block_hash, &colliding_hash}) {  // (colliding: the comparison alone decides)
    KvBlockManager m(16, 4, true, hash);
    auto a = *compute(m, tokens, {}, "tenant-a");
    auto again = m.match_prefix(tokens, 100, "tenant-a");
    EXPECT_EQ(again, (std::vector<int32_t>{a[0], a[1], a[2]}));  // an equal salt shares every block
    m.release(again);
    EXPECT_TRUE(m.match_prefix(tokens, 100, "tenant-b").empty());
    EXPECT_TRUE(m.match_prefix(tokens, 100).empty());  // nor does an unsalted request see them
    // The other tenant computes its own blocks; both sets stay findable, each under its salt.
    auto b = *compute(m, tokens, {}, "tenant-b");
    EXPECT_TRUE(std::none_of(b.begin(), b.end(), [&](int32_t x) { return std::count(a.begin(), a.end(), x) > 0; }));
    auto mb = m.match_prefix(tokens, 100, "tenant-b");
    EXPECT_EQ(mb, b);
    m.release(mb);
    auto plain = *compute(m, tokens);
    auto mp = m.match_prefix(tokens, 100);
    EXPECT_EQ(mp, plain);
    m.release(mp);
  }
}

TEST(KvBlockManager, ReleasingTwiceIsAnError) {
  KvBlockManager m(2, 2, false);
  auto b = *m.allocate();
  m.release(std::vector<int32_t>{b});
  EXPECT_THROW(m.release(std::vector<int32_t>{b}), Error);
}

}  // namespace
}  // namespace dsi
