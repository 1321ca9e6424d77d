#pragma once
// The response side of the OpenAI API: completion and chat responses, their streaming chunks,
// usage and logprobs, shaped as the official clients parse them (with vLLM's extensions:
// stop_reason, prompt_token_ids / token_ids on request, reasoning_content).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "server/choice_state.h"
#include "tokenizer/tokenizer.h"

namespace dsi::server {

enum class ApiKind { api_completion, api_chat };

struct ResponseMeta {
  ApiKind kind = ApiKind::api_completion;
  std::string id;  // cmpl-... / chatcmpl-...
  int64_t created = 0;
  std::string model;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};
Json usage_json(const Usage& u);

// How logprob tokens are spelt.
struct TokenSpeller {
  const Tokenizer& tokenizer;
  bool as_token_ids = false;  // "token_id:N" (vLLM's return_tokens_as_token_ids)
  std::string spell(int32_t id) const;
};

// Completions' logprobs: {tokens, token_logprobs, top_logprobs, text_offset}. text_offset
// continues from `offset` (characters before the first token), which is advanced.
Json completion_logprobs_json(const TokenSpeller& speller, const std::vector<LogprobEntry>& entries, int top_n,
                              int64_t& offset);
// Chat's logprobs: {content: [{token, logprob, bytes, top_logprobs: [...]}]}.
Json chat_logprobs_json(const TokenSpeller& speller, const std::vector<LogprobEntry>& entries);

// A chat tool call; `index` is set in streaming deltas only.
Json tool_call_json(const ToolCall& call, const std::string& id, std::optional<int> index);

// stop_reason as vLLM gives it: null, the stop string, or the stop token id.
Json stop_reason_json(const std::variant<std::monostate, std::string, int32_t>& reason);

// The envelope of a streaming chunk ("text_completion" / "chat.completion.chunk") with the
// given choices.
Json chunk_json(const ResponseMeta& meta, Json choices);

// Number of Unicode characters of UTF-8 text (text_offset counts characters, as Python does).
int64_t utf8_length(std::string_view text);

// A random hex id with a prefix ("cmpl-", "chatcmpl-", "chatcmpl-tool-").
std::string random_id(const char* prefix);

}  // namespace dsi::server
