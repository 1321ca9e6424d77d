#include "grammar/constraint.h"

#include <algorithm>

#include "core/error.h"
#include "grammar/cfg_constraint.h"
#include "grammar/ebnf.h"
#include "grammar/json_schema.h"
#include "grammar/regex.h"

namespace dsi::grammar {

// alt += "|" + x, spelt so that GCC 12's -Wrestrict has no false positive.
static void append_alt(std::string& alt, const std::string& x) {
  if (!alt.empty()) alt.push_back('|');
  alt.append(x);
}

TokenConstraint::Next GrammarConstraint::next(std::span<const int32_t> output) const {
  // The output is replayed from the start: a few cached table lookups per byte, and no state
  // to keep in step with preemption or recomputation.
  int s = automaton_->start();
  for (int32_t t : output) {
    s = automaton_->advance(s, t);
    if (s == Automaton::kDead) return {};  // (only after the grammar's own EOS: nothing more)
  }
  return {automaton_->allowed(s), automaton_->accepting(s)};
}

std::string spec_regex(SpecKind kind, const Json& spec) {
  switch (kind) {
    case SpecKind::regex:
      if (!spec.is_string()) fail("the regex must be a string");
      return spec.get<std::string>();
    case SpecKind::choice: {
      if (!spec.is_array() || spec.empty()) fail("the choice list must be a non-empty array of strings");
      std::string alt;
      for (const auto& c : spec) {
        if (!c.is_string()) fail("the choice list must hold strings");
        append_alt(alt, escape_regex(c.get<std::string>()));
      }
      return alt;
    }
    case SpecKind::json_schema: return json_schema_regex(spec);
    case SpecKind::json_object: return json_object_regex();
    case SpecKind::grammar: fail("an EBNF grammar is not a regular expression");
  }
  return "";
}

static std::shared_ptr<const TokenConstraint> compile(SpecKind kind, const Json& spec,
                                                      const std::shared_ptr<const TokenTrie>& trie) {
  if (kind == SpecKind::grammar) {
    if (!spec.is_string()) fail("the grammar must be a string");
    return std::make_shared<const CfgConstraint>(parse_ebnf(spec.get_ref<const std::string&>()), trie);
  }
  return std::make_shared<const GrammarConstraint>(
      std::make_shared<const Automaton>(compile_regex(spec_regex(kind, spec)), trie));
}

std::shared_ptr<const TokenConstraint> GrammarCache::get(SpecKind kind, const Json& spec) {
  std::string key = std::to_string(int(kind)) + ":" + spec.dump();
  {
    std::lock_guard lock(mu_);
    if (auto it = map_.find(key); it != map_.end()) return it->second;
  }
  auto made = compile(kind, spec, trie_);
  std::lock_guard lock(mu_);
  auto [it, fresh] = map_.emplace(key, made);
  if (fresh) {
    order_.push_back(key);
    if (order_.size() > capacity_) {
      map_.erase(order_.front());
      order_.erase(order_.begin());
    }
  }
  return it->second;
}

size_t GrammarCache::size() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

}  // namespace dsi::grammar
