#pragma once
// A compiled structured-output constraint: the regex's NFA determinised lazily (a DFA state
// is a set of NFA states, made when first reached) and, per DFA state, the tokens whose bytes
// the automaton can read from it, found by walking a trie of the vocabulary's token bytes
// (one walk visits every token sharing a prefix once, and a dead prefix prunes its subtree).
// A token may span several terminals of the grammar (`":"` or `"},{"`): it is allowed when all
// of its bytes are. Masks are cached per DFA state, so a constraint costs one walk per state
// it ever reaches, then a lookup. Thread-safe: sequences sampling in parallel share one.
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/regex.h"

namespace dsi::grammar {

// The byte strings of a vocabulary as a trie. Tokens with no bytes (special tokens without a
// spelling here) are never allowed by a grammar.
class TokenTrie {
 public:
  explicit TokenTrie(const std::vector<std::string>& token_bytes);
  int64_t vocab_size() const { return vocab_; }

  struct Node {
    uint32_t first_child = 0, n_children = 0;  // into children_
    uint32_t first_token = 0, n_tokens = 0;    // into tokens_: tokens ending here
  };
  struct Child {
    uint8_t byte;
    uint32_t node;
  };
  const Node& node(uint32_t i) const { return nodes_[i]; }
  std::span<const Child> children(const Node& n) const { return {children_.data() + n.first_child, n.n_children}; }
  std::span<const int32_t> tokens(const Node& n) const { return {tokens_.data() + n.first_token, n.n_tokens}; }
  const std::string& bytes(int32_t token) const { return bytes_[size_t(token)]; }

 private:
  int64_t vocab_;
  std::vector<Node> nodes_;
  std::vector<Child> children_;
  std::vector<int32_t> tokens_;
  std::vector<std::string> bytes_;
};

class Automaton {
 public:
  Automaton(Nfa nfa, std::shared_ptr<const TokenTrie> trie);

  static constexpr int kDead = -1;
  int start() const { return 0; }
  int step(int state, uint8_t byte) const;                   // kDead when the byte cannot come
  int advance(int state, int32_t token) const;               // all of the token's bytes
  bool accepting(int state) const;
  // The tokens allowed in `state`, sorted; cached.
  std::shared_ptr<const std::vector<int32_t>> allowed(int state) const;
  size_t n_states() const;
  const TokenTrie& trie() const { return *trie_; }

 private:
  int step_locked(int state, uint8_t byte) const;
  int intern(std::vector<int> set) const;
  void closure(std::vector<int>& set) const;

  Nfa nfa_;
  std::shared_ptr<const TokenTrie> trie_;
  mutable std::mutex mu_;
  mutable std::vector<std::vector<int>> sets_;      // DFA state -> sorted NFA states
  mutable std::vector<std::vector<int>> next_;      // DFA state -> 256 successors (-2: not computed)
  mutable std::vector<char> accepting_;
  mutable std::unordered_map<std::string, int> ids_;  // set (as bytes) -> DFA state
  mutable std::vector<std::shared_ptr<const std::vector<int32_t>>> masks_;
};

}  // namespace dsi::grammar
