// The reasoning and tool-call parsers on text, fed whole and in every split, since the models
// used in the server tests (random weights) never produce these formats by themselves.
#include <gtest/gtest.h>

#include <string>

#include "server/reasoning_parser.h"
#include "server/tool_call_parser.h"

namespace dsi::server {
namespace {

ReasoningDelta reason_in_pieces(const std::string& text, size_t piece) {
  ReasoningParser p;
  ReasoningDelta all;
  for (size_t i = 0; i < text.size(); i += piece) {
    ReasoningDelta d = p.add(text.substr(i, piece));
    all.reasoning += d.reasoning;
    all.content += d.content;
  }
  ReasoningDelta d = p.finish();
  all.reasoning += d.reasoning;
  all.content += d.content;
  return all;
}

TEST(ReasoningParser, SplitsAtThinkEndInEveryPieceSize) {
  const std::string text = "Let me think. 2 + 2 = 4.</think>\n\nThe answer is 4.";
  for (size_t piece = 1; piece <= text.size(); ++piece) {
    ReasoningDelta d = reason_in_pieces(text, piece);
    EXPECT_EQ(d.reasoning, "Let me think. 2 + 2 = 4.") << "piece " << piece;
    EXPECT_EQ(d.content, "\n\nThe answer is 4.") << "piece " << piece;
  }
}

TEST(ReasoningParser, DropsASelfEmittedThinkOpen) {
  for (size_t piece = 1; piece < 12; ++piece) {
    ReasoningDelta d = reason_in_pieces("\n<think>\nhmm</think>ok", piece);
    EXPECT_EQ(d.reasoning, "\nhmm") << "piece " << piece;
    EXPECT_EQ(d.content, "ok");
  }
}

TEST(ReasoningParser, WithoutThinkEndAllIsReasoning) {
  ReasoningDelta d = reason_in_pieces("still thinking </thi", 3);
  EXPECT_EQ(d.reasoning, "still thinking </thi");
  EXPECT_EQ(d.content, "");
  // A "<think>" later in the text is reasoning text, not a marker.
  d = reason_in_pieces("a <think> b</think>c", 4);
  EXPECT_EQ(d.reasoning, "a <think> b");
  EXPECT_EQ(d.content, "c");
}

TEST(ReasoningParser, StreamsReasoningBeforeTheEnd) {
  ReasoningParser p;
  EXPECT_EQ(p.add("abc").reasoning, "abc");  // nothing held back that cannot start the marker
  EXPECT_EQ(p.add("de</th").reasoning, "de");
  ReasoningDelta d = p.add("ink>xy");
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "xy");
  EXPECT_FALSE(p.in_reasoning());
  EXPECT_EQ(p.add("</think>z").content, "</think>z");
}

const std::string kCall1 =
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>";
const std::string kCall2 =
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"zone\": \"UTC\"}\n```<｜tool▁call▁end｜>";

ToolCallDelta tools_in_pieces(const std::string& text, size_t piece, std::vector<size_t>* calls_at = nullptr) {
  ToolCallParser p;
  ToolCallDelta all;
  for (size_t i = 0; i < text.size(); i += piece) {
    ToolCallDelta d = p.add(text.substr(i, piece));
    all.content += d.content;
    for (auto& c : d.calls) {
      if (calls_at) calls_at->push_back(i + piece);
      all.calls.push_back(c);
    }
  }
  ToolCallDelta d = p.finish();
  all.content += d.content;
  for (auto& c : d.calls) all.calls.push_back(c);
  return all;
}

TEST(ToolCallParser, ParsesDeepSeekV3CallsInEveryPieceSize) {
  const std::string text = "Checking." "<｜tool▁calls▁begin｜>" + kCall1 + "\n" + kCall2 + "<｜tool▁calls▁end｜>";
  for (size_t piece = 1; piece <= text.size(); piece += (piece < 40 ? 1 : 17)) {
    ToolCallDelta d = tools_in_pieces(text, piece);
    EXPECT_EQ(d.content, "Checking.") << "piece " << piece;
    ASSERT_EQ(d.calls.size(), 2u) << "piece " << piece;
    EXPECT_EQ(d.calls[0].type, "function");
    EXPECT_EQ(d.calls[0].name, "get_weather");
    EXPECT_EQ(d.calls[0].arguments, "{\"city\": \"Paris\"}");
    EXPECT_EQ(d.calls[1].name, "get_time");
    EXPECT_EQ(d.calls[1].arguments, "{\"zone\": \"UTC\"}");
  }
}

TEST(ToolCallParser, ReportsEachCallAsSoonAsItIsComplete) {
  const std::string text = "<｜tool▁calls▁begin｜>" + kCall1 + kCall2;
  std::vector<size_t> at;
  ToolCallDelta d = tools_in_pieces(text, 1, &at);
  ASSERT_EQ(at.size(), 2u);
  EXPECT_EQ(at[0], text.find(kCall2));  // the first call came with its last byte
  EXPECT_EQ(d.content, "");
}

TEST(ToolCallParser, PlainTextPassesAndUnfinishedCallsComeBackAsText) {
  EXPECT_EQ(tools_in_pieces("no tools here <｜tool", 5).content, "no tools here <｜tool");
  const std::string cut = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_we";
  ToolCallDelta d = tools_in_pieces(cut, 7);
  EXPECT_TRUE(d.calls.empty());
  EXPECT_EQ(d.content, cut);  // max_tokens cut the call: nothing the model wrote is lost
  // A malformed call (no name line) is text too; a good one after it still parses.
  const std::string bad = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>garbage<｜tool▁call▁end｜>" + kCall2;
  d = tools_in_pieces(bad, 3);
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.calls[0].name, "get_time");
  EXPECT_EQ(d.content, "<｜tool▁call▁begin｜>garbage<｜tool▁call▁end｜>");
}

TEST(ToolCallParser, SingleCallShapes) {
  ToolCall call;
  EXPECT_TRUE(parse_deepseek_v3_tool_call("function<｜tool▁sep｜>f\n{\"a\": 1}", call));  // no fence
  EXPECT_EQ(call.name, "f");
  EXPECT_EQ(call.arguments, "{\"a\": 1}");
  EXPECT_FALSE(parse_deepseek_v3_tool_call("function f\n{}", call));                       // no separator
  EXPECT_FALSE(parse_deepseek_v3_tool_call("function<｜tool▁sep｜>f", call));              // no arguments line
  EXPECT_FALSE(parse_deepseek_v3_tool_call("function<｜tool▁sep｜>f\n```json\n{}", call));  // open fence
}

}  // namespace
}  // namespace dsi::server
