#pragma once
// Regular expressions over bytes, compiled to a Thompson NFA: the one form every structured
// output (guided_regex, guided_choice, JSON schemas, see json_schema.h) is brought to before
// the automaton (automaton.h) decides which bytes may come next.
//
// The syntax is the common subset of Python's `re` and JSON Schema's `pattern`: literals
// (UTF-8), `.` (any character but \n), classes `[a-z_]`, `[^"\\]` (a negated class also takes
// every non-ASCII character), escapes \d \w \s \D \W \S \n \r \t \f \v and \ + any punctuation,
// \uXXXX, groups `( )` and `(?: )`, `|`, and the quantifiers * + ? {n} {n,} {n,m} (m <= 1000).
// A leading ^ and a trailing $ are accepted (matches are always whole). Everything else, and
// characters outside the ASCII range inside a class range, is an Error naming the position.
// The output is always valid UTF-8: `.` and negated classes expand to whole UTF-8 sequences.
#include <cstdint>
#include <string_view>
#include <vector>

namespace dsi::grammar {

struct NfaState {
  struct Edge {
    uint8_t lo, hi;  // bytes [lo, hi]
    int to;
  };
  std::vector<Edge> edges;
  std::vector<int> eps;  // transitions that read nothing
};

struct Nfa {
  std::vector<NfaState> states;
  int start = 0;
  int accept = 0;  // the one accepting state (no edges out)
};

Nfa compile_regex(std::string_view pattern);

// `text` as a regex that matches exactly it (every metacharacter escaped).
std::string escape_regex(std::string_view text);

}  // namespace dsi::grammar
