#pragma once
// Tokens of a Jinja template, with jinja2's rules for newlines (all kinds become "\n", one
// trailing newline is dropped), whitespace control ("{%-", "-%}", "+%}", "{%+"), trim_blocks,
// lstrip_blocks, comments and {% raw %}.
#include <string>
#include <string_view>
#include <vector>

namespace dsi::jinja {

enum class TokenType { text, var_begin, var_end, block_begin, block_end, name, string, integer, floating, op, eof };

struct Token {
  TokenType type;
  std::string value;  // text, name, decoded string literal, number spelling or operator
  int line;
};

struct LexOptions {
  bool trim_blocks = true;    // drop the first newline after a block tag
  bool lstrip_blocks = true;  // drop spaces and tabs before a block tag at the start of a line
};

// Errors are dsi::Error "line N: ...".
std::vector<Token> lex(std::string_view source, const LexOptions& options);

// Python's "unicode_escape" decoding of a string literal's body, as jinja2 applies it.
std::string unescape_string_literal(std::string_view body);

}  // namespace dsi::jinja
