#include "grammar/cfg_constraint.h"

#include <algorithm>
#include <array>

namespace dsi::grammar {

namespace {

// The key of output prefix [0, k + 1) from the key of [0, k): a 64-bit mix (splitmix64's)
// of the previous key and the token, so every prefix length and content has its own key.
uint64_t extend_key(uint64_t key, int32_t token) {
  uint64_t x = key ^ (uint64_t(uint32_t(token)) + 0x9E3779B97F4A7C15ull + (key << 6) + (key >> 2));
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
constexpr uint64_t kEmptyKey = 0x243F6A8885A308D3ull;

}  // namespace

CfgConstraint::CfgConstraint(const Cfg& cfg, std::shared_ptr<const TokenTrie> trie, size_t max_states)
    : earley_(cfg), trie_(std::move(trie)), max_states_(std::max<size_t>(max_states, 2)) {
  std::lock_guard lock(mu_);
  keep_locked(kEmptyKey, earley_.start());
}

void CfgConstraint::keep_locked(uint64_t key, std::shared_ptr<const EarleySet> s) const {
  auto [it, fresh] = kept_.try_emplace(key, std::move(s));
  if (!fresh) return;
  order_.push_back(key);
  while (order_.size() > max_states_) {
    if (order_.front() != kEmptyKey) kept_.erase(order_.front());  // (the start state stays)
    order_.pop_front();
  }
}

namespace {

// The sets one trie walk meets, each with its successors by byte as indices into the walk's
// own table: a walk visits up to every trie node (274k for DeepSeek-V3's vocabulary), mostly
// from a handful of sets (interned: inside a string every byte leads back to the same set), so
// a plain array lookup per node instead of Earley::step's locked memo keeps it to a few ms.
// The table holds each set it met, so none of them can go away during the walk.
class WalkSets {
 public:
  static constexpr int32_t kUnknown = -1, kDead = -2;
  explicit WalkSets(const Earley& e) : earley_(e) {}
  int32_t id(const std::shared_ptr<const EarleySet>& s) {
    auto [it, fresh] = index_.try_emplace(s.get(), int32_t(sets_.size()));
    if (fresh) {
      sets_.emplace_back();
      sets_.back().set = s;
      sets_.back().next.fill(kUnknown);
    }
    return it->second;
  }
  int32_t next(int32_t from, uint8_t byte) {
    int32_t n = sets_[size_t(from)].next[byte];
    if (n != kUnknown) return n;
    const std::shared_ptr<const EarleySet>& s = sets_[size_t(from)].set;
    std::shared_ptr<const EarleySet> t = s->scan_bytes.test(byte) ? earley_.step(s, byte) : nullptr;
    n = t ? id(t) : kDead;
    sets_[size_t(from)].next[byte] = n;  // (id() may have grown sets_: index again)
    return n;
  }

 private:
  struct Entry {
    std::shared_ptr<const EarleySet> set;
    std::array<int32_t, 256> next;
  };
  const Earley& earley_;
  std::deque<Entry> sets_;
  std::unordered_map<const EarleySet*, int32_t> index_;
};

// Marks the tokens allowed below `node_index` (in trie order; sorted afterwards by a sweep of
// the marks, cheaper than sorting up to the whole vocabulary).
void walk(const TokenTrie& trie, WalkSets& sets, int32_t s, uint32_t node_index, std::vector<uint8_t>& allowed,
          size_t& n_allowed) {
  for (const auto& c : trie.children(trie.node(node_index))) {
    const int32_t next = sets.next(s, c.byte);
    if (next == WalkSets::kDead) continue;
    for (int32_t t : trie.tokens(trie.node(c.node))) allowed[size_t(t)] = 1;
    n_allowed += trie.node(c.node).n_tokens;
    walk(trie, sets, next, c.node, allowed, n_allowed);  // depth: the longest token's bytes
  }
}

}  // namespace

std::vector<int32_t> CfgConstraint::allowed(const std::shared_ptr<const EarleySet>& s) const {
  std::vector<uint8_t> marks(size_t(trie_->vocab_size()), 0);
  size_t n = 0;
  WalkSets sets(earley_);
  walk(*trie_, sets, sets.id(s), 0, marks, n);
  std::vector<int32_t> out;
  out.reserve(n);
  for (size_t t = 0; t < marks.size() && out.size() < n; ++t)
    if (marks[t]) out.push_back(int32_t(t));
  return out;
}

std::shared_ptr<const std::vector<int32_t>> CfgConstraint::mask(const std::shared_ptr<const EarleySet>& s) const {
  {
    std::lock_guard lock(mu_);
    if (auto it = masks_.find(s.get()); it != masks_.end() && it->second.set.lock() == s) return it->second.tokens;
  }
  auto tokens = std::make_shared<const std::vector<int32_t>>(allowed(s));
  std::lock_guard lock(mu_);
  masks_[s.get()] = {s, tokens};
  if (masks_.size() >= sweep_masks_at_) {
    std::erase_if(masks_, [](const auto& kv) { return kv.second.set.expired(); });
    sweep_masks_at_ = std::max<size_t>(1024, 2 * masks_.size());
  }
  return tokens;
}

TokenConstraint::Next CfgConstraint::next(std::span<const int32_t> output) const {
  // Keys of every prefix; the longest one kept is where the replay starts.
  std::vector<uint64_t> keys(output.size() + 1);
  keys[0] = kEmptyKey;
  for (size_t k = 0; k < output.size(); ++k) keys[k + 1] = extend_key(keys[k], output[k]);
  size_t from = 0;
  std::shared_ptr<const EarleySet> at;
  {
    std::lock_guard lock(mu_);
    for (size_t k = output.size() + 1; k-- > 0;)
      if (auto it = kept_.find(keys[k]); it != kept_.end()) {
        from = k;
        at = it->second;
        break;
      }
  }
  for (size_t k = from; k < output.size() && at; ++k) {
    const int32_t t = output[k];
    const bool known = t >= 0 && t < trie_->vocab_size() && !trie_->bytes(t).empty();
    at = known ? earley_.advance(at, trie_->bytes(t)) : nullptr;
    std::lock_guard lock(mu_);
    keep_locked(keys[k + 1], at);
  }
  if (!at) return {};  // (only past the grammar's own end: nothing more)
  return {mask(at), at->accepting};
}

}  // namespace dsi::grammar
