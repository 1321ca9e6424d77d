#include "kvcache/block_manager.h"

#include <algorithm>

#include "core/error.h"

namespace dsi {

namespace {
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}
}  // namespace

uint64_t kv_block_hash(KvPrefixRef parent, std::span<const int32_t> tokens) {
  uint64_t h = mix64(uint64_t(uint32_t(parent.block)) ^ 0x9e3779b97f4a7c15ull);
  h = mix64(h ^ parent.generation);
  for (int32_t t : tokens) h = mix64(h ^ (uint64_t(uint32_t(t)) + 0x9e3779b97f4a7c15ull + (h << 6)));
  return mix64(h ^ tokens.size());
}

KvPrefixRef kv_root_prefix(std::string_view cache_salt) {
  if (cache_salt.empty()) return kKvRootPrefix;
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the salt, then mixed
  for (char c : cache_salt) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
  return {-1, mix64(h) | 1};  // (never 0: that is the unsalted root)
}

KvBlockManager::KvBlockManager(int64_t n_blocks, int block_size, bool prefix_caching, KvBlockHashFn hash)
    : block_size_(block_size), prefix_caching_(prefix_caching), hash_(hash) {
  if (n_blocks <= 0 || n_blocks > INT32_MAX) fail("KV cache: {} blocks is not a usable size", n_blocks);
  if (block_size <= 0) fail("KV cache: block size {} must be positive", block_size);
  if (!hash) fail("KV cache: no block hash function");
  blocks_.resize(size_t(n_blocks));
  free_.reserve(size_t(n_blocks));
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));  // hand out low ids first
}

bool KvBlockManager::holds_prefix(KvPrefixRef ref) const {
  if (ref.block < 0) return true;  // a root
  const Block& b = blocks_.at(size_t(ref.block));
  return b.registered && b.generation == ref.generation;
}

std::optional<int32_t> KvBlockManager::find(KvPrefixRef parent, std::span<const int32_t> tokens, uint64_t bucket,
                                            std::string_view salt) const {
  auto [first, last] = by_bucket_.equal_range(bucket);
  for (auto it = first; it != last; ++it) {
    const Block& b = blocks_[size_t(it->second)];
    if (b.parent == parent && std::equal(tokens.begin(), tokens.end(), b.tokens.begin(), b.tokens.end()) &&
        (parent.block >= 0 || b.salt == salt))
      return it->second;
  }
  return std::nullopt;
}

void KvBlockManager::take_reference(int32_t block) {
  Block& b = blocks_[size_t(block)];
  if (b.ref_count == 0 && b.registered) lru_.erase(b.lru_pos);
  ++b.ref_count;
}

std::vector<int32_t> KvBlockManager::match_prefix(std::span<const int32_t> tokens, int64_t max_blocks,
                                                  std::string_view cache_salt) {
  std::vector<int32_t> found;
  if (!prefix_caching_) return found;
  const int64_t n_full = std::min<int64_t>(int64_t(tokens.size()) / block_size_, max_blocks);
  KvPrefixRef parent = kv_root_prefix(cache_salt);
  for (int64_t i = 0; i < n_full; ++i) {
    auto chunk = tokens.subspan(size_t(i * block_size_), size_t(block_size_));
    auto block = find(parent, chunk, hash_(parent, chunk), cache_salt);
    if (!block) break;
    take_reference(*block);
    found.push_back(*block);
    parent = prefix_ref(*block);
  }
  return found;
}

void KvBlockManager::unregister(int32_t block) {
  Block& b = blocks_[size_t(block)];
  if (!b.registered) return;
  auto [first, last] = by_bucket_.equal_range(b.bucket);
  for (auto it = first; it != last; ++it)
    if (it->second == block) {
      by_bucket_.erase(it);
      break;
    }
  b.registered = false;
  b.tokens.clear();
  b.salt.clear();
}

std::optional<int32_t> KvBlockManager::allocate() {
  int32_t block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    block = lru_.front();
    lru_.pop_front();
    unregister(block);
  } else {
    return std::nullopt;
  }
  Block& b = blocks_[size_t(block)];
  b.ref_count = 1;
  ++b.generation;  // refs to what it held before (children's parents) match nothing now
  return block;
}

void KvBlockManager::release(std::span<const int32_t> blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const int32_t block = *it;
    Block& b = blocks_.at(size_t(block));
    if (b.ref_count <= 0) fail("KV cache: block {} released more often than taken", block);
    if (--b.ref_count > 0) continue;
    if (b.registered) {
      b.lru_pos = lru_.insert(lru_.end(), block);
    } else {
      free_.push_back(block);
    }
  }
}

KvPrefixRef KvBlockManager::register_full_block(int32_t block, KvPrefixRef parent, std::span<const int32_t> tokens,
                                                std::string_view cache_salt) {
  Block& b = blocks_.at(size_t(block));
  if (b.ref_count <= 0) fail("KV cache: block {} registered without being held", block);
  if (b.registered) return prefix_ref(block);
  // Unregistered, this block's own ref is one no lookup can reach: a dead end for its children.
  if (!prefix_caching_ || int64_t(tokens.size()) != block_size_ || !holds_prefix(parent)) return prefix_ref(block);
  const uint64_t bucket = hash_(parent, tokens);
  if (auto existing = find(parent, tokens, bucket, cache_salt)) return prefix_ref(*existing);
  b.registered = true;
  b.bucket = bucket;
  b.parent = parent;
  b.tokens.assign(tokens.begin(), tokens.end());
  if (parent.block < 0) b.salt.assign(cache_salt);
  by_bucket_.emplace(bucket, block);
  return prefix_ref(block);
}

KvCacheStats KvBlockManager::stats() const {
  KvCacheStats s;
  s.n_blocks = n_blocks();
  s.n_free = int64_t(free_.size());
  s.n_cached = int64_t(lru_.size());
  s.n_used = s.n_blocks - s.n_free - s.n_cached;
  return s;
}

}  // namespace dsi
