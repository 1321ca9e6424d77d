#include "server/tool_call_parser.h"

#include "server/marker_scan.h"

namespace dsi::server {

namespace {

constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

bool parse_deepseek_v3_tool_call(std::string_view text, ToolCall& call) {
  size_t sep = text.find(kSep);
  if (sep == std::string_view::npos) return false;
  std::string_view type = trim(text.substr(0, sep));
  std::string_view rest = text.substr(sep + kSep.size());
  size_t newline = rest.find('\n');
  if (newline == std::string_view::npos) return false;
  std::string_view name = trim(rest.substr(0, newline));
  std::string_view args = trim(rest.substr(newline + 1));
  // The arguments sit in a ```json fence; accept a bare JSON text too.
  if (args.substr(0, 3) == "```") {
    size_t body = args.find('\n');
    if (body == std::string_view::npos) return false;
    args = args.substr(body + 1);
    if (args.size() < 3 || args.substr(args.size() - 3) != "```") return false;
    args = trim(args.substr(0, args.size() - 3));
  }
  if (name.empty()) return false;
  call.type = type.empty() ? "function" : std::string(type);
  call.name = std::string(name);
  call.arguments = std::string(args);
  return true;
}

ToolCallDelta ToolCallParser::add(std::string_view text) {
  ToolCallDelta out;
  held_.append(text);
  if (!in_calls_) {
    size_t begin = held_.find(kCallsBegin);
    if (begin == std::string::npos) {
      size_t keep = marker_prefix_at_end(held_, kCallsBegin);
      out.content = held_.substr(0, held_.size() - keep);
      held_.erase(0, held_.size() - keep);
      return out;
    }
    out.content = held_.substr(0, begin);
    held_.erase(0, begin + kCallsBegin.size());
    in_calls_ = true;
  }
  take_complete_calls(out);
  return out;
}

void ToolCallParser::take_complete_calls(ToolCallDelta& out) {
  for (;;) {
    size_t begin = held_.find(kCallBegin);
    if (begin == std::string::npos) return;
    size_t end = held_.find(kCallEnd, begin);
    if (end == std::string::npos) return;
    std::string_view body = std::string_view(held_).substr(begin + kCallBegin.size(), end - begin - kCallBegin.size());
    ToolCall call;
    if (parse_deepseek_v3_tool_call(body, call)) {
      out.calls.push_back(std::move(call));
      ++n_calls_;
      held_.erase(0, end + kCallEnd.size());
    } else {
      // Malformed: give the raw text back as content rather than dropping it.
      out.content.append(held_, begin, end + kCallEnd.size() - begin);
      held_.erase(0, end + kCallEnd.size());
    }
  }
}

ToolCallDelta ToolCallParser::finish() {
  ToolCallDelta out;
  if (!in_calls_) {
    out.content = std::move(held_);
  } else {
    std::string_view rest = trim(held_);
    if (size_t end = rest.find(kCallsEnd); end != std::string_view::npos) rest = trim(rest.substr(0, end));
    if (!rest.empty()) out.content = (n_calls_ == 0 ? std::string(kCallsBegin) : std::string()) + std::string(rest);
  }
  held_.clear();
  return out;
}

}  // namespace dsi::server
