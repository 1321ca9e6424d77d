#pragma once
// Structured outputs for the API: the request's spec (response_format, guided_*,
// structured_outputs) compiled against the served vocabulary into the engine constraint.
#include <memory>
#include <mutex>

#include "grammar/constraint.h"
#include "server/openai_request.h"
#include "tokenizer/tokenizer.h"

namespace dsi::server {

// Built on first use (the trie over the vocabulary's bytes takes a moment), then shared.
class StructuredOutputs {
 public:
  StructuredOutputs(const Tokenizer& tokenizer, int64_t vocab_size) : tokenizer_(tokenizer), vocab_(vocab_size) {}
  // Sets o.sampling.constraint when the request asked for a structured output; a spec that
  // cannot be compiled is a 400 naming its field.
  void apply(GenerationOptions& o);

 private:
  grammar::GrammarCache& cache();
  const Tokenizer& tokenizer_;
  int64_t vocab_;
  std::once_flag once_;
  std::unique_ptr<grammar::GrammarCache> cache_;
};

// Every token's bytes (byte-level alphabet decoded); special tokens have none, so no grammar
// ever produces them.
std::vector<std::string> vocabulary_bytes(const Tokenizer& tokenizer, int64_t vocab_size);

}  // namespace dsi::server
