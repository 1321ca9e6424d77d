#pragma once
// A byte-level Earley recogniser for a context-free grammar (ebnf.h): the matcher behind
// guided_grammar. Earley takes every context-free grammar: left and right recursion,
// ambiguity, empty rules (nullable symbols are advanced over at prediction, after Aycock and
// Horspool, "Practical Earley Parsing", 2002).
//
// A parser state is one Earley set, immutable, shared (shared_ptr), and holding its origins
// (the earlier sets its items began in) alive. Sets are interned: a set keeps only the items
// that matter for what may follow (completed items are dropped once their completions are
// made), and two sets with the same items are one object. Where the grammar's configurations
// repeat (inside a string, a number, at the same nesting depth) the sets are the same ones
// again, so the matcher behaves like a lazily built DFA: each set memoises its successor per
// byte, and a constraint can cache a mask per set, as the regex automaton does per state.
// Deeper nesting makes new sets, as it must.
//
// Work is bounded: a set holds at most kMaxEarleyItems items and its closure offers at most
// kMaxEarleyWork (duplicates included); a byte that would pass either is refused as if the
// grammar did not allow it (an ambiguous grammar stops growing there, it never runs away). A
// start that passes them is a compile error. Unambiguous grammars stay far below it: a set has at most one item per
// grammar position and origin, and repeats compile to left recursion (constant items per byte).
//
// Thread-safety: all members are safe to call from many threads at once (the intern table and
// the per-set memo are under one mutex; building a new set happens outside it).
#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/ebnf.h"

namespace dsi::grammar {

constexpr size_t kMaxEarleyItems = 20'000;
constexpr size_t kMaxEarleyWork = 1'000'000;

class EarleySet;

struct EarleyItem {
  uint32_t alt;             // the alternative (Earley::alt_*)
  uint32_t dot;             // symbols of it read
  const EarleySet* origin;  // the set where the alternative began: this set or one in `deps`
};

class EarleySet : public std::enable_shared_from_this<EarleySet> {
 public:
  bool accepting = false;                              // the input so far is a sentence
  std::bitset<256> scan_bytes;                         // bytes some item can read next
  std::vector<EarleyItem> items;                       // sorted; none completed
  std::vector<std::pair<int32_t, uint32_t>> waiting;   // (rule after the dot, item index), sorted
  std::vector<std::shared_ptr<const EarleySet>> deps;  // every origin but this set: kept alive

  EarleySet() = default;
  EarleySet(const EarleySet&) = delete;
  EarleySet& operator=(const EarleySet&) = delete;
  ~EarleySet();  // frees long chains of origins in a loop, not by deep recursion

 private:
  friend class Earley;
  // Successors by byte, filled by Earley::step under its mutex (weak: a set's successors
  // often point back at it through their origins).
  mutable std::unique_ptr<std::array<std::weak_ptr<const EarleySet>, 256>> next_;
  mutable std::bitset<256> refused_;  // bytes that passed kMaxEarleyItems
};

class Earley {
 public:
  // Throws Error when the start rule derives no string. Alternatives that can never finish
  // (an unproductive rule in them) are dropped, so every reachable set has a way to accept.
  explicit Earley(const Cfg& cfg);
  ~Earley();

  std::shared_ptr<const EarleySet> start() const { return start_; }
  // The set after reading `byte` in `s`, or null when the grammar does not allow it here.
  std::shared_ptr<const EarleySet> step(const std::shared_ptr<const EarleySet>& s, uint8_t byte) const;
  // `bytes` from `s`: null when some byte is refused.
  std::shared_ptr<const EarleySet> advance(std::shared_ptr<const EarleySet> s, std::string_view bytes) const;
  bool accepts(std::string_view text) const;  // the whole text is a sentence

  size_t n_rules() const { return rule_first_alt_.size() - 1; }
  size_t n_alts() const { return alt_lhs_.size(); }
  size_t n_sets() const;  // interned sets alive now

 private:
  bool closure(EarleySet& s) const;  // false when it passes kMaxEarleyItems
  std::shared_ptr<const EarleySet> intern(std::shared_ptr<EarleySet> s) const;

  std::vector<std::bitset<256>> terminals_;
  std::vector<int32_t> alt_lhs_;
  std::vector<uint32_t> alt_begin_;  // into syms_; alt a is syms_[alt_begin_[a], alt_begin_[a + 1])
  std::vector<CfgSymbol> syms_;
  std::vector<uint32_t> rule_first_alt_;  // rule r's alternatives: [rule_first_alt_[r], rule_first_alt_[r + 1])
  std::vector<char> nullable_;
  uint32_t start_alt_ = 0;                // the added rule S' ::= root
  const EarleySet* start_raw_ = nullptr;  // its first set: S' ::= root . with this origin accepts
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::weak_ptr<const EarleySet>> interned_;
  mutable size_t sweep_at_ = 1024;  // drop expired entries when the table reaches this size
  std::shared_ptr<const EarleySet> start_;
};

}  // namespace dsi::grammar
