#pragma once
// guided_grammar as an engine constraint: the Earley matcher (earley.h) read through the
// vocabulary. An Earley state is not a small number, so the state of each output prefix (a
// hash of the token ids so far) is kept in a bounded table: the usual step finds the previous
// token's state there and reads one token, and a prefix that is not there (evicted, another
// request) is replayed from the nearest one kept, or from the start. A state's mask is one
// walk of the token trie, each trie node's byte stepped from its parent's set, a dead prefix
// pruning its subtree (so a token spanning several terminals is allowed when all of its bytes
// are); it is cached per Earley set, and sets are interned, so a state the grammar comes back
// to (inside a string, the same nesting depth) costs a lookup. EOS is allowed only where the
// grammar accepts the output. Thread-safe: sequences sampling in parallel share one.
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/token_constraint.h"
#include "grammar/automaton.h"
#include "grammar/earley.h"

namespace dsi::grammar {

class CfgConstraint final : public TokenConstraint {
 public:
  CfgConstraint(const Cfg& cfg, std::shared_ptr<const TokenTrie> trie, size_t max_states = 16384);
  Next next(std::span<const int32_t> output) const override;
  const Earley& earley() const { return earley_; }
  // The tokens allowed after the set `s`, sorted (one trie walk; not cached).
  std::vector<int32_t> allowed(const std::shared_ptr<const EarleySet>& s) const;

 private:
  void keep_locked(uint64_t key, std::shared_ptr<const EarleySet> s) const;
  std::shared_ptr<const std::vector<int32_t>> mask(const std::shared_ptr<const EarleySet>& s) const;

  Earley earley_;
  std::shared_ptr<const TokenTrie> trie_;
  size_t max_states_;
  mutable std::mutex mu_;
  // Output prefix key -> its state (null: the grammar refused the prefix).
  mutable std::unordered_map<uint64_t, std::shared_ptr<const EarleySet>> kept_;
  mutable std::deque<uint64_t> order_;  // oldest first, for eviction
  struct Mask {
    std::weak_ptr<const EarleySet> set;  // (the address may be reused once the set is gone)
    std::shared_ptr<const std::vector<int32_t>> tokens;
  };
  mutable std::unordered_map<const EarleySet*, Mask> masks_;
  mutable size_t sweep_masks_at_ = 1024;
};

}  // namespace dsi::grammar
