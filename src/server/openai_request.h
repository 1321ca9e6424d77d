#pragma once
// The request side of the OpenAI API (POST /v1/completions, /v1/chat/completions) with
// vLLM's extensions: JSON body -> validated request. Every problem is an ApiError (400)
// naming the field. Unknown top-level fields are rejected, as the OpenAI API does
// ("Unrecognized request argument supplied: x"), so a misspelt parameter never silently
// changes nothing; fields the API defines that change nothing here (user, metadata, store,
// ...) are accepted and ignored; fields vLLM accepts whose effect is not a different result
// (kv_transfer_params, vllm_xargs, ...) are accepted and listed in `ignored_fields` so the
// handler logs one warning naming them; vLLM's extras that matter (guided_*, priority,
// cache_salt, ...) are honoured; those we cannot honour (suffix, use_beam_search, ...) are
// rejected. See docs/serving.md.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "engine/request.h"

namespace dsi::server {

// What both endpoints share: sampling and output options.
struct GenerationOptions {
  SamplingParams sampling;         // sampling.max_tokens is final only once the prompt length is known
  std::optional<int> max_tokens;   // as requested (chat: max_completion_tokens wins)
  std::optional<int> default_max_tokens;  // chat without max_tokens: at most this (generation_config.json)
  int n = 1;                       // choices per prompt
  std::vector<std::string> stop;   // stop strings: the output ends before the first one
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage: a final usage chunk
  bool continuous_usage_stats = false;  // stream_options.continuous_usage_stats: usage in every chunk
  bool logprobs = false;
  int top_logprobs = 0;
  bool return_token_ids = false;            // vLLM: prompt_token_ids and token_ids in the choices
  bool return_tokens_as_token_ids = false;  // vLLM: logprob tokens spelt "token_id:N"
  std::optional<bool> add_special_tokens;   // unset: endpoint default (completions true, chat false)
  std::string request_id;                   // vLLM: the response id becomes cmpl-/chatcmpl-<request_id>
  std::optional<int> truncate_prompt_tokens;  // vLLM: keep only the prompt's last N tokens
  std::vector<std::string> bad_words;         // vLLM: tokenized by the server into sampling.bad_words_ids
  int64_t priority = 0;                       // vLLM: lower first (only with --scheduling-policy priority)
  std::string cache_salt;                     // vLLM: prefix-cache blocks shared only under an equal salt
  // Structured output: kind "regex", "choice", "json_schema", "json_object" or "grammar" with its spec
  // (response_format, guided_*, structured_outputs); compiled by the server (src/grammar/).
  std::string structured_kind;
  Json structured_spec;
  std::string structured_param;  // the field it came from, for errors
};

// Server-wide defaults a request's own fields override: `dsinfer serve --generation-config`
// (the checkpoint's generation_config.json, as vLLM reads it) and --max-logprobs.
struct RequestDefaults {
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  std::optional<int> max_tokens;  // generation_config.json's max_new_tokens: the default where a request sets none
  int max_logprobs = 20;          // --max-logprobs: logprobs / top_logprobs above this are a 400
  bool priority_scheduling = false;  // --scheduling-policy priority: else a non-zero priority is a 400
};

// A completions prompt: text the server tokenizes, or token ids.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

struct CompletionRequest {
  std::string model;
  std::vector<std::string> ignored_fields;  // vLLM fields accepted and ignored: the handler warns once naming them
  std::vector<PromptInput> prompts;  // a batch: n choices for each, in order
  bool echo = false;
  GenerationOptions options;
};

struct ChatRequest {
  std::string model;
  std::vector<std::string> ignored_fields;  // as in CompletionRequest
  nlohmann::ordered_json messages;  // content normalised to a string (text parts joined) or null
  nlohmann::ordered_json tools;     // null or an array of {type: function, function: {...}}
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
  bool tool_choice_none = false;  // "none": tools reach the template but calls are not parsed
  bool tool_choice_forced = false;  // "required" or a named function: the output is constrained to calls
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  GenerationOptions options;
};

// Any endpoint's body as JSON: 400 naming the problem for an empty body, malformed JSON,
// invalid UTF-8, nesting deeper than kMaxJsonDepth, or a number out of range (`param`: the
// top-level field it is in). Every handler parses its body with this.
Json parse_request_body(std::string_view body);

// `body` is the parsed request; the chat parser also needs the raw text to keep the key
// order of messages and tools (chat templates render them with tojson).
CompletionRequest parse_completion_request(const Json& body, const RequestDefaults& defaults = {});
ChatRequest parse_chat_request(const Json& body, std::string_view raw_body, const RequestDefaults& defaults = {});

}  // namespace dsi::server
