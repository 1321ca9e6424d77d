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

uint64_t kv_block_hash(uint64_t parent_hash, std::span<const int32_t> tokens) {
  uint64_t h = mix64(parent_hash ^ 0x9e3779b97f4a7c15ull);
  for (int32_t t : tokens) h = mix64(h ^ (uint64_t(uint32_t(t)) + 0x9e3779b97f4a7c15ull + (h << 6)));
  return mix64(h ^ tokens.size());
}

KvBlockManager::KvBlockManager(int64_t n_blocks, int block_size, bool prefix_caching)
    : block_size_(block_size), prefix_caching_(prefix_caching), blocks_(size_t(n_blocks)) {
  if (n_blocks <= 0 || n_blocks > INT32_MAX) fail("KV cache: {} blocks is not a usable size", n_blocks);
  if (block_size <= 0) fail("KV cache: block size {} must be positive", block_size);
  free_.reserve(size_t(n_blocks));
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));  // hand out low ids first
}

void KvBlockManager::take_reference(int32_t block) {
  Block& b = blocks_[size_t(block)];
  if (b.ref_count == 0 && b.hash) lru_.erase(b.lru_pos);
  ++b.ref_count;
}

std::vector<int32_t> KvBlockManager::match_prefix(std::span<const int32_t> tokens, int64_t max_blocks) {
  std::vector<int32_t> found;
  if (!prefix_caching_) return found;
  const int64_t n_full = std::min<int64_t>(int64_t(tokens.size()) / block_size_, max_blocks);
  queried_tokens_ += n_full * block_size_;
  uint64_t parent = kKvRootHash;
  for (int64_t i = 0; i < n_full; ++i) {
    auto chunk = tokens.subspan(size_t(i * block_size_), size_t(block_size_));
    uint64_t h = kv_block_hash(parent, chunk);
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    const Block& b = blocks_[size_t(it->second)];
    if (b.parent_hash != parent || !std::equal(chunk.begin(), chunk.end(), b.tokens.begin(), b.tokens.end())) break;
    take_reference(it->second);
    found.push_back(it->second);
    parent = h;
  }
  hit_tokens_ += int64_t(found.size()) * block_size_;
  return found;
}

void KvBlockManager::unregister(int32_t block) {
  Block& b = blocks_[size_t(block)];
  if (!b.hash) return;
  auto it = by_hash_.find(*b.hash);
  if (it != by_hash_.end() && it->second == block) by_hash_.erase(it);
  b.hash.reset();
  b.tokens.clear();
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
  blocks_[size_t(block)].ref_count = 1;
  return block;
}

void KvBlockManager::release(std::span<const int32_t> blocks) {
  for (int32_t block : blocks) {
    Block& b = blocks_.at(size_t(block));
    if (b.ref_count <= 0) fail("KV cache: block {} released more often than taken", block);
    if (--b.ref_count > 0) continue;
    if (b.hash) {
      b.lru_pos = lru_.insert(lru_.end(), block);
    } else {
      free_.push_back(block);
    }
  }
}

void KvBlockManager::register_full_block(int32_t block, uint64_t hash, uint64_t parent_hash,
                                         std::span<const int32_t> tokens) {
  if (!prefix_caching_ || int64_t(tokens.size()) != block_size_) return;
  Block& b = blocks_.at(size_t(block));
  if (b.hash || by_hash_.count(hash)) return;
  b.hash = hash;
  b.parent_hash = parent_hash;
  b.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, block);
}

KvCacheStats KvBlockManager::stats() const {
  KvCacheStats s;
  s.n_blocks = n_blocks();
  s.n_free = int64_t(free_.size());
  s.n_cached = int64_t(lru_.size());
  s.n_used = s.n_blocks - s.n_free - s.n_cached;
  s.prefix_queried_tokens = queried_tokens_;
  s.prefix_hit_tokens = hit_tokens_;
  return s;
}

}  // namespace dsi
