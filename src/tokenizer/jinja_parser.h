#pragma once
// Parses a Jinja template into a syntax tree: the statements and expressions chat templates
// use. Anything else (macros, includes, ...) is an Error naming it and its line.
#include <string_view>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace dsi::jinja {

Body parse(std::string_view source, const LexOptions& options);

}  // namespace dsi::jinja
