#pragma once
// guided_grammar: an EBNF grammar in the GBNF / xgrammar style vLLM users pass, parsed into a
// plain context-free grammar over bytes (Cfg) that the Earley matcher (earley.h) runs.
//
//   root   ::= select " from " table      # a rule; `root` is the start symbol
//   table  ::= [a-z_] [a-z0-9_]*          # classes, negated [^"\\], `.` (any character)
//   select ::= "SELECT " ("*" | cols)     # groups, alternation
//   cols   ::= col ("," col){0,7}         # * + ? {m} {m,} {m,n} (n <= 1000)
//
// Literals are "..." or '...' with the escapes \n \r \t \\ \" \' \xHH \uHHHH \UHHHHHHHH; `#`
// starts a comment to the end of the line. A rule ends where the next `name ::=` begins, so a
// rule may span lines. Rules may be recursive in any way, left recursion included. Character
// classes hold UTF-8 characters and ranges; a non-ASCII character becomes its UTF-8 byte
// sequences, so the grammar's language is always valid UTF-8 (as the regex module's).
//
// Everything the parser cannot take is an Error "grammar: line L column C: ..." (or naming the
// rule: undefined, defined twice, no root).
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsi::grammar {

// A symbol of a right-hand side: a nonterminal (index into Cfg::rules) or a terminal (one
// byte out of a set, index into Cfg::terminals), told apart by sign.
struct CfgSymbol {
  int32_t v;
  bool terminal() const { return v < 0; }
  int32_t terminal_index() const { return ~v; }
  static CfgSymbol rule(int32_t i) { return {i}; }
  static CfgSymbol term(int32_t i) { return {~i}; }
};

struct CfgRule {
  std::string name;  // the grammar's name, or "#N" for a group, class or repeat
  std::vector<std::vector<CfgSymbol>> alts;
};

struct Cfg {
  std::vector<CfgRule> rules;
  std::vector<std::bitset<256>> terminals;  // each a set of bytes, unique
  int32_t start = 0;                        // the rule `root`
};

// Limits that keep a grammar's size, and so the matcher's work per byte, bounded.
constexpr size_t kMaxGrammarBytes = 1 << 20;
constexpr size_t kMaxCfgSymbols = 200'000;  // after repeats and classes are expanded
constexpr int kMaxGrammarRepeat = 1000;

Cfg parse_ebnf(std::string_view text);

}  // namespace dsi::grammar
