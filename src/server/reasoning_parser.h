#pragma once
// --reasoning-parser deepseek-r1: splits generated text at "</think>" into the reasoning
// (OpenAI-compatible servers return it as reasoning_content) and the answer (content).
// DeepSeek-R1's chat template opens "<think>" in the prompt, so generation starts inside the
// reasoning; a "<think>" the model emits itself at the very start is dropped. Text without
// "</think>" is all reasoning (the model was cut off while thinking).
#include <string>
#include <string_view>

namespace dsi::server {

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
};

// Incremental: feed deltas in order, then finish(). One instance per choice; not thread-safe.
class ReasoningParser {
 public:
  ReasoningDelta add(std::string_view text);
  ReasoningDelta finish();  // releases what was held back for a possibly split marker
  bool in_reasoning() const { return in_reasoning_; }

 private:
  std::string held_;  // text not yet classified: a possible start of "<think>" or "</think>"
  bool in_reasoning_ = true;
  bool at_start_ = true;  // nothing emitted yet: a leading "<think>" may still come
};

}  // namespace dsi::server
