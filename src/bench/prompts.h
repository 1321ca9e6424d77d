#pragma once
// The requests a benchmark sends: random prompts of set lengths, or prompts from a JSON-lines
// file ({"prompt": "text" | [ids]} or {"messages": [...]}, optional "max_tokens").
#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_options.h"
#include "core/json.h"

namespace dsi::bench {

struct BenchPrompt {
  Json prompt;         // completions: a string or an array of token ids; chat: the messages array
  int max_tokens = 0;
  int64_t expected_input_len = 0;  // what was asked for (the server's usage says what it counted)
};

// num_prompts prompts from opts: its dataset (random and prefix-repetition seeded by opts.seed)
// or opts.prompts_file (cycled when shorter).
std::vector<BenchPrompt> make_prompts(const BenchOptions& opts);

// The ShareGPT JSON vLLM reads (an array of {"conversations": [{"from", "value"}, ...]}):
// the first turn is the prompt, the second's length (about 4 characters a token, when
// sharegpt_output_len is 0) its max_tokens; conversations of fewer than two turns, or with a
// prompt or answer under 4 tokens, are skipped as vLLM skips them. In file order, cycled.
std::vector<BenchPrompt> sharegpt_prompts(const BenchOptions& opts);

// The JSON body of one streaming request.
std::string request_body(const BenchOptions& opts, const std::string& model, const BenchPrompt& p);

}  // namespace dsi::bench
