#include "grammar/automaton.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace dsi::grammar {

TokenTrie::TokenTrie(const std::vector<std::string>& token_bytes) : vocab_(int64_t(token_bytes.size())), bytes_(token_bytes) {
  // Built as a map-based trie first, then flattened breadth-first so children are contiguous.
  struct Build {
    std::map<uint8_t, uint32_t> kids;
    std::vector<int32_t> tokens;
  };
  std::vector<Build> b(1);
  for (size_t t = 0; t < token_bytes.size(); ++t) {
    const std::string& s = token_bytes[t];
    if (s.empty()) continue;
    uint32_t at = 0;
    for (char c : s) {
      auto it = b[at].kids.find(uint8_t(c));
      if (it == b[at].kids.end()) {
        b.emplace_back();
        it = b[at].kids.emplace(uint8_t(c), uint32_t(b.size() - 1)).first;
      }
      at = it->second;
    }
    b[at].tokens.push_back(int32_t(t));
  }
  nodes_.resize(b.size());
  std::vector<uint32_t> order{0}, index(b.size());
  index[0] = 0;
  for (size_t k = 0; k < order.size(); ++k)
    for (auto& [byte, kid] : b[order[k]].kids) {
      index[kid] = uint32_t(order.size());
      order.push_back(kid);
    }
  for (size_t k = 0; k < order.size(); ++k) {
    const Build& src = b[order[k]];
    Node& n = nodes_[k];
    n.first_child = uint32_t(children_.size());
    n.n_children = uint32_t(src.kids.size());
    for (auto& [byte, kid] : src.kids) children_.push_back({byte, index[kid]});
    n.first_token = uint32_t(tokens_.size());
    n.n_tokens = uint32_t(src.tokens.size());
    tokens_.insert(tokens_.end(), src.tokens.begin(), src.tokens.end());
  }
}

Automaton::Automaton(Nfa nfa, std::shared_ptr<const TokenTrie> trie) : nfa_(std::move(nfa)), trie_(std::move(trie)) {
  std::vector<int> s{nfa_.start};
  std::lock_guard lock(mu_);
  intern(std::move(s));
}

void Automaton::closure(std::vector<int>& set) const {
  std::vector<char> seen(nfa_.states.size(), 0);
  std::vector<int> stack = set;
  for (int s : set) seen[size_t(s)] = 1;
  while (!stack.empty()) {
    int s = stack.back();
    stack.pop_back();
    for (int t : nfa_.states[size_t(s)].eps)
      if (!seen[size_t(t)]) {
        seen[size_t(t)] = 1;
        set.push_back(t);
        stack.push_back(t);
      }
  }
  // Only states that read a byte, and the accept state, tell DFA states apart.
  std::erase_if(set, [&](int s) { return nfa_.states[size_t(s)].edges.empty() && s != nfa_.accept; });
  std::sort(set.begin(), set.end());
}

int Automaton::intern(std::vector<int> set) const {
  closure(set);
  if (set.empty()) return kDead;
  std::string key(reinterpret_cast<const char*>(set.data()), set.size() * sizeof(int));
  auto [it, fresh] = ids_.try_emplace(std::move(key), int(sets_.size()));
  if (fresh) {
    accepting_.push_back(std::binary_search(set.begin(), set.end(), nfa_.accept) ? 1 : 0);
    sets_.push_back(std::move(set));
    next_.emplace_back(256, -2);
    masks_.emplace_back();
  }
  return it->second;
}

int Automaton::step_locked(int state, uint8_t byte) const {
  int& cached = next_[size_t(state)][byte];
  if (cached != -2) return cached;
  std::vector<int> to;
  for (int s : sets_[size_t(state)])
    for (const auto& e : nfa_.states[size_t(s)].edges)
      if (byte >= e.lo && byte <= e.hi) to.push_back(e.to);
  std::sort(to.begin(), to.end());
  to.erase(std::unique(to.begin(), to.end()), to.end());
  int id = intern(std::move(to));
  next_[size_t(state)][byte] = id;  // (intern may have grown next_: index again)
  return id;
}

int Automaton::step(int state, uint8_t byte) const {
  if (state == kDead) return kDead;
  std::lock_guard lock(mu_);
  return step_locked(state, byte);
}

int Automaton::advance(int state, int32_t token) const {
  if (token < 0 || token >= trie_->vocab_size()) return kDead;
  const std::string& b = trie_->bytes(token);
  if (b.empty()) return kDead;
  std::lock_guard lock(mu_);
  for (char c : b) {
    if (state == kDead) return kDead;
    state = step_locked(state, uint8_t(c));
  }
  return state;
}

bool Automaton::accepting(int state) const {
  if (state == kDead) return false;
  std::lock_guard lock(mu_);
  return accepting_[size_t(state)] != 0;
}

size_t Automaton::n_states() const {
  std::lock_guard lock(mu_);
  return sets_.size();
}

std::shared_ptr<const std::vector<int32_t>> Automaton::allowed(int state) const {
  std::lock_guard lock(mu_);
  if (auto m = masks_[size_t(state)]) return m;
  auto out = std::make_shared<std::vector<int32_t>>();
  // Depth-first over the trie, carrying the DFA state each prefix leads to.
  std::vector<std::pair<uint32_t, int>> stack{{0u, state}};
  while (!stack.empty()) {
    auto [node_index, s] = stack.back();
    stack.pop_back();
    const TokenTrie::Node& n = trie_->node(node_index);
    if (node_index != 0) {
      auto toks = trie_->tokens(n);
      out->insert(out->end(), toks.begin(), toks.end());
    }
    for (const auto& c : trie_->children(n)) {
      int t = step_locked(s, c.byte);
      if (t != kDead) stack.emplace_back(c.node, t);
    }
  }
  std::sort(out->begin(), out->end());
  masks_[size_t(state)] = out;
  return out;
}

}  // namespace dsi::grammar
