#pragma once
// Structured outputs as engine constraints: a spec (a regex, a choice list, a JSON schema or any
// JSON object) compiled once into an Automaton over the vocabulary's bytes, or an EBNF grammar
// (guided_grammar) into an Earley matcher (cfg_constraint.h), kept in a bounded cache; each
// request gets the shared constraint, which reads its output through it.
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "engine/token_constraint.h"
#include "grammar/automaton.h"

namespace dsi::grammar {

class GrammarConstraint final : public TokenConstraint {
 public:
  explicit GrammarConstraint(std::shared_ptr<const Automaton> a) : automaton_(std::move(a)) {}
  Next next(std::span<const int32_t> output) const override;
  const Automaton& automaton() const { return *automaton_; }

 private:
  std::shared_ptr<const Automaton> automaton_;
};

enum class SpecKind { regex, choice, json_schema, json_object, grammar };

// Compiled automata by spec; at most `capacity` kept (the oldest goes first). Thread-safe.
class GrammarCache {
 public:
  GrammarCache(std::shared_ptr<const TokenTrie> trie, size_t capacity = 64) : trie_(std::move(trie)), capacity_(capacity) {}
  // `spec`: the pattern (regex), a JSON array of strings (choice), the schema (json_schema),
  // ignored (json_object), the EBNF text (grammar). Throws Error naming what is unsupported.
  std::shared_ptr<const TokenConstraint> get(SpecKind kind, const Json& spec);
  size_t size() const;

 private:
  std::shared_ptr<const TokenTrie> trie_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const TokenConstraint>> map_;
  std::vector<std::string> order_;
};

// The regex a spec compiles to (for tests and error messages); not for SpecKind::grammar.
std::string spec_regex(SpecKind kind, const Json& spec);

}  // namespace dsi::grammar
