#pragma once
// An open-addressing hash map from a pair of token ids to the merge they form (rank and
// resulting id). The BPE inner loop looks pairs up constantly; a flat table keeps each lookup
// to one or two cache lines. Filled once at load, then read-only.
#include <cstdint>
#include <vector>

namespace dsi {

struct Merge {
  int32_t rank;    // position in the merges list: lower merges first
  int32_t new_id;  // id of the merged token
};

class PairMap {
 public:
  void reserve(size_t n_entries) {
    size_t capacity = 16;
    while (capacity < n_entries * 2) capacity *= 2;
    slots_.assign(capacity, Slot{empty_key, {0, 0}});
    mask_ = capacity - 1;
    shift_ = 64;
    for (size_t c = capacity; c > 1; c >>= 1) --shift_;
    size_ = 0;
  }

  // Inserts or overwrites (the reference keeps the last duplicate of a merge).
  void insert(int32_t left, int32_t right, Merge merge) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    uint64_t k = key(left, right);
    size_t i = index(k);
    while (slots_[i].key != empty_key && slots_[i].key != k) i = (i + 1) & mask_;
    if (slots_[i].key == empty_key) ++size_;
    slots_[i] = {k, merge};
  }

  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    uint64_t k = key(left, right);
    for (size_t i = index(k);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.merge;
      if (s.key == empty_key) return nullptr;
    }
  }

  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  static constexpr uint64_t empty_key = ~uint64_t(0);  // ids are non-negative, so never a key

  static uint64_t key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
  // Fibonacci hashing: the top bits of the product spread consecutive ids well.
  size_t index(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const Slot& s : old)
      if (s.key != empty_key) insert(int32_t(s.key >> 32), int32_t(s.key & 0xFFFFFFFFu), s.merge);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

}  // namespace dsi
