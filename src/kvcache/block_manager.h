#pragma once
// Bookkeeping of the paged KV cache: which blocks are free, which sequences hold them
// (reference counts), and which full blocks hold a known token prefix (automatic prefix
// caching). The cache memory itself belongs to the backend; this class only hands out block
// ids. Not thread-safe: the scheduler thread owns it.
//
// Block states: free (on the free list), used (ref_count > 0), cached (ref_count = 0 but its
// prefix hash is registered: reusable by a later request until evicted, least recently
// released first).
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace dsi {

// Hash of a full block's tokens chained over the hashes of all blocks before it, so equal
// hashes mean equal prefixes (the tokens are also compared on lookup).
uint64_t kv_block_hash(uint64_t parent_hash, std::span<const int32_t> tokens);
constexpr uint64_t kKvRootHash = 0x6473696e66657221ull;  // parent hash of a sequence's first block

struct KvCacheStats {
  int64_t n_blocks = 0;
  int64_t n_used = 0;    // held by at least one sequence
  int64_t n_cached = 0;  // unreferenced but reusable prefix blocks
  int64_t n_free = 0;
  int64_t prefix_queried_tokens = 0;  // prompt tokens looked up in the prefix cache
  int64_t prefix_hit_tokens = 0;      // of which found
};

class KvBlockManager {
 public:
  KvBlockManager(int64_t n_blocks, int block_size, bool prefix_caching);

  int block_size() const { return block_size_; }
  int64_t n_blocks() const { return int64_t(blocks_.size()); }
  // Blocks allocate() can still hand out (free + evictable cached).
  int64_t n_available() const { return int64_t(free_.size() + lru_.size()); }

  // The longest run of full blocks at the start of `tokens` that the cache holds, at most
  // max_blocks; each returned block gets a reference. Counts toward the hit rate.
  std::vector<int32_t> match_prefix(std::span<const int32_t> tokens, int64_t max_blocks);

  // A block for new tokens, with one reference; evicts the least recently released cached
  // block when no free one is left. nullopt when every block is in use.
  std::optional<int32_t> allocate();

  // Drops one reference from each block (a finished, cancelled or preempted sequence).
  void release(std::span<const int32_t> blocks);

  // Records that `block` now holds the full block `tokens` whose hash is `hash`, so later
  // requests can share it. A no-op when prefix caching is off or the prefix is already cached.
  void register_full_block(int32_t block, uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens);

  int ref_count(int32_t block) const { return blocks_.at(size_t(block)).ref_count; }
  KvCacheStats stats() const;

 private:
  struct Block {
    int ref_count = 0;
    std::optional<uint64_t> hash;  // registered prefix
    uint64_t parent_hash = 0;
    std::vector<int32_t> tokens;            // the block's tokens, compared on lookup
    std::list<int32_t>::iterator lru_pos;  // valid while cached (ref_count 0 and hash set)
  };
  void take_reference(int32_t block);
  void unregister(int32_t block);

  int block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;
  std::list<int32_t> lru_;  // cached blocks, least recently released first
  std::unordered_map<uint64_t, int32_t> by_hash_;
  int64_t queried_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace dsi
