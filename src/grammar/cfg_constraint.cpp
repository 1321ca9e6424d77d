#include "grammar/cfg_constraint.h"

#include <algorithm>

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

void CfgConstraint::walk(const std::shared_ptr<const EarleySet>& s, uint32_t node_index,
                         std::vector<int32_t>& out) const {
  const TokenTrie::Node& node = trie_->node(node_index);
  for (const auto& c : trie_->children(node)) {
    if (!s->scan_bytes.test(c.byte)) continue;
    std::shared_ptr<const EarleySet> next = earley_.step(s, c.byte);
    if (!next) continue;
    auto toks = trie_->tokens(trie_->node(c.node));
    out.insert(out.end(), toks.begin(), toks.end());
    walk(next, c.node, out);  // depth: the longest token's bytes
  }
}

std::vector<int32_t> CfgConstraint::allowed(const std::shared_ptr<const EarleySet>& s) const {
  std::vector<int32_t> out;
  walk(s, 0, out);
  std::sort(out.begin(), out.end());
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
