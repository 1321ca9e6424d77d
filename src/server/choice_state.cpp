#include "server/choice_state.h"

#include <algorithm>

namespace dsi::server {

namespace {
// Non-byte-level decoders take the last prompt ids as context for the first generated ones.
constexpr size_t kPromptContext = 8;

std::span<const int32_t> tail(std::span<const int32_t> ids) {
  return ids.subspan(ids.size() - std::min(ids.size(), kPromptContext));
}
}  // namespace

ChoiceState::ChoiceState(const Tokenizer& tokenizer, ChoiceConfig config, std::span<const int32_t> prompt)
    : config_(std::move(config)),
      detokenizer_(tokenizer, config_.skip_special_tokens, config_.stop, tail(prompt)) {}

ChoiceDelta ChoiceState::add(const RequestOutput& out) {
  ChoiceDelta delta;
  if (finished_) return delta;
  n_prompt_tokens_ = out.n_prompt_tokens;
  n_cached_prompt_tokens_ = out.n_cached_prompt_tokens;
  std::string text;
  for (size_t j = 0; j < out.tokens.size(); ++j) {
    const GeneratedToken& t = out.tokens[j];
    delta.token_ids.push_back(t.token);
    ++n_generated_;
    if (config_.logprobs) delta.logprobs.push_back({t.token, t.logprob, t.top});
    // The EOS or stop token that ended generation counts as generated but is not text
    // (vLLM's default; include_stop_str_in_output shows it).
    bool is_stop_token = out.stop_token && j + 1 == out.tokens.size() && t.token == *out.stop_token;
    if (is_stop_token && !config_.include_stop_str_in_output) continue;
    DetokenizedText piece = detokenizer_.push(t.token);
    text += piece.text;
    if (piece.stopped) {
      finished_ = stopped_by_string_ = true;
      finish_reason_ = "stop";
      stop_reason_ = config_.stop[size_t(piece.stop_index)];
      if (config_.include_stop_str_in_output) text += config_.stop[size_t(piece.stop_index)];
      break;
    }
  }
  if (!finished_ && out.finish != FinishReason::finish_none) {
    DetokenizedText rest = detokenizer_.finish();
    text += rest.text;
    finished_ = true;
    if (rest.stopped) {
      stopped_by_string_ = true;
      finish_reason_ = "stop";
      stop_reason_ = config_.stop[size_t(rest.stop_index)];
      if (config_.include_stop_str_in_output) text += config_.stop[size_t(rest.stop_index)];
    } else {
      const char* name = finish_reason_name(out.finish);
      finish_reason_ = name ? name : "stop";
      error_ = out.error;
      server_unavailable_ = out.server_unavailable;
      if (out.finish == FinishReason::finish_stop && out.stop_token &&
          std::find(config_.stop_token_ids.begin(), config_.stop_token_ids.end(), *out.stop_token) !=
              config_.stop_token_ids.end())
        stop_reason_ = *out.stop_token;
    }
  }
  ChoiceDelta routed = route_text(std::move(text));
  delta.text = std::move(routed.text);
  delta.reasoning = std::move(routed.reasoning);
  delta.tool_calls = std::move(routed.tool_calls);
  delta.finished = finished_;
  if (finished_ && n_tool_calls_ > 0 && finish_reason_ == "stop") finish_reason_ = "tool_calls";
  return delta;
}

ChoiceDelta ChoiceState::route_text(std::string text) {
  ChoiceDelta d;
  if (!config_.chat) {
    d.text = std::move(text);
    return d;
  }
  std::string content;
  if (config_.parse_reasoning) {
    ReasoningDelta r = reasoning_.add(text);
    if (finished_) {
      ReasoningDelta rest = reasoning_.finish();
      r.reasoning += rest.reasoning;
      r.content += rest.content;
    }
    d.reasoning = std::move(r.reasoning);
    content = std::move(r.content);
  } else {
    content = std::move(text);
  }
  if (config_.parse_tool_calls) {
    ToolCallDelta t = tool_calls_.add(content);
    if (finished_) {
      ToolCallDelta rest = tool_calls_.finish();
      t.content += rest.content;
      for (auto& c : rest.calls) t.calls.push_back(std::move(c));
    }
    d.text = std::move(t.content);
    d.tool_calls = std::move(t.calls);
    n_tool_calls_ += int(d.tool_calls.size());
  } else {
    d.text = std::move(content);
  }
  return d;
}

}  // namespace dsi::server
