#pragma once
// --tool-call-parser deepseek-v3: turns DeepSeek-V3's tool-call tokens in generated text into
// OpenAI tool calls. The format (from the model's chat template):
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>
//   [\n<｜tool▁call▁begin｜>...<｜tool▁call▁end｜>]...<｜tool▁calls▁end｜>
// Text before the first marker is ordinary content. A call is reported once it is complete,
// so a streaming client gets each call in one delta with its whole arguments.
#include <string>
#include <string_view>
#include <vector>

namespace dsi::server {

struct ToolCall {
  std::string type = "function";
  std::string name;
  std::string arguments;  // the JSON text the model wrote, as written (trimmed)
};

struct ToolCallDelta {
  std::string content;
  std::vector<ToolCall> calls;
};

// Incremental: feed deltas in order, then finish(). One instance per choice; not thread-safe.
class ToolCallParser {
 public:
  ToolCallDelta add(std::string_view text);
  // Releases held-back text; an unfinished call (cut off by max_tokens) comes back as
  // content, raw, so nothing the model wrote is lost.
  ToolCallDelta finish();
  int n_calls() const { return n_calls_; }

 private:
  void take_complete_calls(ToolCallDelta& out);

  std::string held_;
  bool in_calls_ = false;  // past <｜tool▁calls▁begin｜>
  int n_calls_ = 0;
};

// One call's text between <｜tool▁call▁begin｜> and <｜tool▁call▁end｜>: "TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n```".
// false when it does not have that shape.
bool parse_deepseek_v3_tool_call(std::string_view text, ToolCall& call);

}  // namespace dsi::server
