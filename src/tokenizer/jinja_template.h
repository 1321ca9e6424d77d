#pragma once
// A parsed Jinja template and its interpreter. Scoping follows jinja2: each iteration of a
// for loop runs in a fresh scope (a `set` inside it is gone at the next iteration and after
// the loop), `if` opens no scope, and namespace() objects carry values out of loops.
//
// A Template is immutable after parsing; render() may be called from any number of threads.
#include <string>
#include <string_view>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_value.h"

namespace dsi::jinja {

class Template {
 public:
  // Errors are dsi::Error "line N: ...".
  Template(std::string_view source, const LexOptions& options = {});

  // Renders with `globals` as the template's variables. Errors are dsi::Error "line N: ...".
  std::string render(const ValueDict& globals) const;

 private:
  Body body_;
};

}  // namespace dsi::jinja
