#pragma once
// One choice of a response (one engine request): turns the engine's token events into what
// the client sees. Detokenizes incrementally, ends the text before a stop string, collects
// logprobs, and for chat splits reasoning from content (--reasoning-parser) and tool calls
// from content (--tool-call-parser). Knows nothing of HTTP or JSON; one thread at a time.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "engine/request.h"
#include "server/reasoning_parser.h"
#include "server/tool_call_parser.h"
#include "tokenizer/incremental_detokenizer.h"

namespace dsi::server {

struct ChoiceConfig {
  bool chat = false;
  bool parse_reasoning = false;   // chat only
  bool parse_tool_calls = false;  // chat only
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool logprobs = false;
};

struct LogprobEntry {
  int32_t token = 0;
  float logprob = 0;
  std::vector<TokenLogprob> top;
};

// What one engine event adds to the choice.
struct ChoiceDelta {
  std::string text;       // completions: text; chat: content (after the parsers)
  std::string reasoning;  // chat with --reasoning-parser
  std::vector<ToolCall> tool_calls;
  std::vector<LogprobEntry> logprobs;
  std::vector<int32_t> token_ids;
  bool finished = false;  // this event ended the choice (finish_reason is set)
};

class ChoiceState {
 public:
  ChoiceState(const Tokenizer& tokenizer, ChoiceConfig config, std::span<const int32_t> prompt);

  // Adds an engine event. Events after the choice finished are ignored (an empty delta).
  ChoiceDelta add(const RequestOutput& out);

  bool finished() const { return finished_; }
  // A stop string ended the text: the engine request is still running and must be finished.
  bool stopped_by_string() const { return stopped_by_string_; }
  // "stop", "length", "tool_calls", "abort", "error"; empty while running.
  const std::string& finish_reason() const { return finish_reason_; }
  // vLLM's stop_reason: the stop string or stop token id that ended the text, else none.
  const std::variant<std::monostate, std::string, int32_t>& stop_reason() const { return stop_reason_; }
  const std::string& error() const { return error_; }
  bool server_unavailable() const { return server_unavailable_; }  // the error is the server's: 503

  int n_prompt_tokens() const { return n_prompt_tokens_; }
  int n_cached_prompt_tokens() const { return n_cached_prompt_tokens_; }
  int n_generated() const { return n_generated_; }  // tokens consumed (up to the stop)
  int n_tool_calls() const { return n_tool_calls_; }

 private:
  ChoiceDelta route_text(std::string text);

  ChoiceConfig config_;
  IncrementalDetokenizer detokenizer_;
  ReasoningParser reasoning_;
  ToolCallParser tool_calls_;
  bool finished_ = false;
  bool stopped_by_string_ = false;
  std::string finish_reason_;
  std::variant<std::monostate, std::string, int32_t> stop_reason_;
  std::string error_;
  bool server_unavailable_ = false;
  int n_prompt_tokens_ = 0;
  int n_cached_prompt_tokens_ = 0;
  int n_generated_ = 0;
  int n_tool_calls_ = 0;
};

}  // namespace dsi::server
