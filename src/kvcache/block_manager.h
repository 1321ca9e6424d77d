#pragma once
// Bookkeeping of the paged KV cache: which blocks are free, which sequences hold them
// (reference counts), and which full blocks hold a known token prefix (automatic prefix
// caching). The cache memory itself belongs to the backend; this class only hands out block
// ids. Not thread-safe: the scheduler thread owns it.
//
// Block states: free (on the free list), used (ref_count > 0), cached (ref_count = 0 but
// registered as a prefix: reusable by a later request until evicted, least recently released
// first).
//
// A registered block is identified by its parent (the registered block holding the prefix
// before it, as a KvPrefixRef) and its own tokens, both compared on lookup: the hash only
// picks the bucket, so a collision costs a comparison, never a wrong block. A block's
// generation changes every time it is handed out for new contents, so a child registered
// under an evicted parent can never match under whatever that block id holds next.
//
// Tenants are kept apart by a cache salt (vLLM's cache_salt): a sequence's first block hangs
// under a root of its salt, so blocks are shared only between sequences of equal salts. The
// salt changes the first block's hash and identity, and so every later block's parent too;
// first blocks also compare the salt itself on lookup (a salt-hash collision shares nothing).
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsi {

// A registered prefix block as the parent of the next block: its id and the generation it
// had when registered. A root (parent of a sequence's first block) has block -1: {-1, 0}
// without a cache salt, {-1, a hash of the salt} with one (kv_root_prefix).
struct KvPrefixRef {
  int32_t block = -1;
  uint64_t generation = 0;
  bool operator==(const KvPrefixRef&) const = default;
};
constexpr KvPrefixRef kKvRootPrefix{};
KvPrefixRef kv_root_prefix(std::string_view cache_salt);  // kKvRootPrefix for ""


// Picks the lookup bucket of a full block from its parent and tokens. Pluggable so that
// tests can force collisions; equal buckets never imply equal contents.
using KvBlockHashFn = uint64_t (*)(KvPrefixRef parent, std::span<const int32_t> tokens);
uint64_t kv_block_hash(KvPrefixRef parent, std::span<const int32_t> tokens);

struct KvCacheStats {
  int64_t n_blocks = 0;
  int64_t n_used = 0;    // held by at least one sequence
  int64_t n_cached = 0;  // unreferenced but reusable prefix blocks
  int64_t n_free = 0;
};

class KvBlockManager {
 public:
  KvBlockManager(int64_t n_blocks, int block_size, bool prefix_caching, KvBlockHashFn hash = kv_block_hash);

  int block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  int64_t n_blocks() const { return int64_t(blocks_.size()); }
  // Blocks allocate() can still hand out (free + evictable cached).
  int64_t n_available() const { return int64_t(free_.size() + lru_.size()); }

  // The longest run of full blocks at the start of `tokens` that the cache holds, at most
  // max_blocks; each returned block gets a reference. Counts nothing: the scheduler counts
  // hits when the sequence is actually admitted. Only blocks registered under the same
  // `cache_salt` match.
  std::vector<int32_t> match_prefix(std::span<const int32_t> tokens, int64_t max_blocks,
                                    std::string_view cache_salt = {});

  // A block for new tokens, with one reference and a new generation; evicts the least
  // recently released cached block when no free one is left. nullopt when every block is in use.
  std::optional<int32_t> allocate();

  // Drops one reference from each block (a finished, cancelled or preempted sequence's block
  // table). Cached blocks join the eviction order last block first, so a prefix's tail is
  // evicted before its head (a head evicted first would leave its descendants unreachable).
  void release(std::span<const int32_t> blocks);

  // Records that `block`, held by the caller, now holds the full block `tokens` following the
  // prefix `parent`. Returns the ref that identifies this prefix as the next block's parent:
  // the block's own, or that of the block which already held the same prefix (this one then
  // stays unregistered). Nothing is registered when prefix caching is off or `parent` no
  // longer holds its prefix (evicted); the returned ref then matches nothing either. A first
  // block (parent kv_root_prefix(cache_salt)) is registered under its sequence's salt.
  KvPrefixRef register_full_block(int32_t block, KvPrefixRef parent, std::span<const int32_t> tokens,
                                  std::string_view cache_salt = {});
  // The ref of a block match_prefix returned (registered and held).
  KvPrefixRef prefix_ref(int32_t block) const { return {block, blocks_.at(size_t(block)).generation}; }

  int ref_count(int32_t block) const { return blocks_.at(size_t(block)).ref_count; }
  KvCacheStats stats() const;

 private:
  struct Block {
    int ref_count = 0;
    uint64_t generation = 0;  // bumped by allocate(): a new contents identity
    bool registered = false;
    uint64_t bucket = 0;                    // the hash it is registered under
    KvPrefixRef parent;                     // compared on lookup, with the tokens
    std::vector<int32_t> tokens;
    std::string salt;                       // a first block's cache salt, compared on lookup
    std::list<int32_t>::iterator lru_pos;  // valid while cached (ref_count 0 and registered)
  };
  bool holds_prefix(KvPrefixRef ref) const;
  std::optional<int32_t> find(KvPrefixRef parent, std::span<const int32_t> tokens, uint64_t bucket,
                              std::string_view salt) const;
  void take_reference(int32_t block);
  void unregister(int32_t block);

  int block_size_;
  bool prefix_caching_;
  KvBlockHashFn hash_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;
  std::list<int32_t> lru_;  // cached blocks, least recently released first
  std::unordered_multimap<uint64_t, int32_t> by_bucket_;
};

}  // namespace dsi
