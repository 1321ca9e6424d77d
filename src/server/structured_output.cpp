#include "server/structured_output.h"

#include "core/error.h"
#include "server/api_error.h"
#include "tokenizer/byte_level.h"

namespace dsi::server {

std::vector<std::string> vocabulary_bytes(const Tokenizer& tokenizer, int64_t vocab_size) {
  std::vector<std::string> bytes(static_cast<size_t>(vocab_size));
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (tokenizer.is_special(int32_t(id))) continue;
    auto token = tokenizer.id_to_token(int32_t(id));
    if (!token) continue;
    std::string& out = bytes[size_t(id)];
    if (!byte_level::append_decoded(out, *token)) out = *token;
  }
  return bytes;
}

grammar::GrammarCache& StructuredOutputs::cache() {
  std::call_once(once_, [&] {
    auto trie = std::make_shared<const grammar::TokenTrie>(vocabulary_bytes(tokenizer_, vocab_));
    cache_ = std::make_unique<grammar::GrammarCache>(std::move(trie));
  });
  return *cache_;
}

void StructuredOutputs::apply(GenerationOptions& o) {
  if (o.structured_kind.empty()) return;
  grammar::SpecKind kind = o.structured_kind == "regex"         ? grammar::SpecKind::regex
                           : o.structured_kind == "choice"      ? grammar::SpecKind::choice
                           : o.structured_kind == "json_schema" ? grammar::SpecKind::json_schema
                           : o.structured_kind == "grammar"     ? grammar::SpecKind::grammar
                                                                : grammar::SpecKind::json_object;
  try {
    o.sampling.constraint = cache().get(kind, o.structured_spec);
  } catch (const Error& e) {
    fail_param(o.structured_param, "'{}': {}", o.structured_param, e.what());
  }
}

}  // namespace dsi::server
