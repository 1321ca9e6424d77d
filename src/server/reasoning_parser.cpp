#include "server/reasoning_parser.h"

#include "server/marker_scan.h"

namespace dsi::server {

namespace {
constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
}  // namespace

ReasoningDelta ReasoningParser::add(std::string_view text) {
  ReasoningDelta out;
  if (!in_reasoning_) {
    out.content.assign(text);
    return out;
  }
  held_.append(text);
  if (at_start_) {
    // Leading whitespace before a self-emitted "<think>" is not reasoning either.
    size_t lead = held_.find_first_not_of(" \t\r\n");
    if (lead == std::string::npos) return out;
    std::string_view rest = std::string_view(held_).substr(lead);
    if (rest.size() < kThinkOpen.size() && kThinkOpen.substr(0, rest.size()) == rest) return out;
    if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) held_.erase(0, lead + kThinkOpen.size());
    at_start_ = false;
  }
  size_t close = held_.find(kThinkClose);
  if (close != std::string::npos) {
    out.reasoning = held_.substr(0, close);
    out.content = held_.substr(close + kThinkClose.size());
    held_.clear();
    in_reasoning_ = false;
    return out;
  }
  size_t keep = marker_prefix_at_end(held_, kThinkClose);
  out.reasoning = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

ReasoningDelta ReasoningParser::finish() {
  ReasoningDelta out;
  if (in_reasoning_) out.reasoning = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace dsi::server
