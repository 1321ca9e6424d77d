#pragma once
// The `pattern` of tokenizer.json Split pre-tokenizers and Replace normalizers/decoders:
// {"Regex": "..."} or {"String": "..."}. A String is matched as an escaped literal through the
// same regex engine, which is what the reference does, so empty-match rules agree.
#include <string>
#include <string_view>

#include "core/json.h"
#include "tokenizer/regex.h"

namespace dsi {

class Pattern {
 public:
  // `what` names the JSON field for errors ("pre_tokenizer.pretokenizers[2].pattern").
  static Pattern from_json(const Json& j, std::string_view what);

  bool is_empty_literal() const { return empty_literal_; }
  const Regex& regex() const { return regex_; }

 private:
  explicit Pattern(Regex regex, bool empty_literal) : regex_(std::move(regex)), empty_literal_(empty_literal) {}
  Regex regex_;
  bool empty_literal_ = false;
};

// A regex that matches `literal` exactly.
std::string escape_regex(std::string_view literal);

}  // namespace dsi
