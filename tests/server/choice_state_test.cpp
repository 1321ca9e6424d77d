// A choice's token events -> text, with the real DeepSeek-V3 tokenizer: stop strings across
// token boundaries, stop tokens, and the chat parsers fed token by token.
#include <gtest/gtest.h>

#include "server/choice_state.h"

namespace dsi::server {
namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer t = Tokenizer::embedded_default();
  return t;
}

// Feeds `ids` one event per token, the last with `finish`; returns the deltas merged.
ChoiceDelta feed(ChoiceState& s, const std::vector<int32_t>& ids, FinishReason finish,
                 std::optional<int32_t> stop_token = std::nullopt) {
  ChoiceDelta all;
  for (size_t i = 0; i < ids.size(); ++i) {
    RequestOutput out;
    out.tokens.push_back({ids[i], -0.5f, {}});
    out.n_prompt_tokens = 3;
    if (i + 1 == ids.size()) {
      out.finish = finish;
      out.stop_token = stop_token;
    }
    ChoiceDelta d = s.add(out);
    all.text += d.text;
    all.reasoning += d.reasoning;
    for (auto& c : d.tool_calls) all.tool_calls.push_back(c);
    for (auto& e : d.logprobs) all.logprobs.push_back(e);
    all.token_ids.insert(all.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
    all.finished = d.finished;
  }
  return all;
}

TEST(ChoiceState, TextAndLength) {
  auto ids = tokenizer().encode("Hello there, friend.", false);
  ChoiceState s(tokenizer(), {}, std::vector<int32_t>{0});
  ChoiceDelta d = feed(s, ids, FinishReason::finish_length);
  EXPECT_EQ(d.text, "Hello there, friend.");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(s.finish_reason(), "length");
  EXPECT_EQ(s.n_generated(), int(ids.size()));
  EXPECT_TRUE(d.logprobs.empty());
}

TEST(ChoiceState, StopStringAcrossTokens) {
  auto ids = tokenizer().encode("alpha beta gamma delta", false);
  ChoiceConfig c;
  c.stop = {"a gam"};
  c.logprobs = true;
  ChoiceState s(tokenizer(), c, {});
  ChoiceDelta d = feed(s, ids, FinishReason::finish_length);
  EXPECT_EQ(d.text, "alpha bet");
  EXPECT_TRUE(s.finished());
  EXPECT_TRUE(s.stopped_by_string());
  EXPECT_EQ(s.finish_reason(), "stop");
  EXPECT_EQ(std::get<std::string>(s.stop_reason()), "a gam");
  EXPECT_LT(s.n_generated(), int(ids.size()));  // tokens after the stop are not consumed
  EXPECT_EQ(d.logprobs.size(), size_t(s.n_generated()));
  c.include_stop_str_in_output = true;
  ChoiceState with(tokenizer(), c, {});
  EXPECT_EQ(feed(with, ids, FinishReason::finish_length).text, "alpha beta gam");
}

TEST(ChoiceState, StopTokenIsCountedNotShown) {
  auto ids = tokenizer().encode("one two", false);
  const int32_t eos = 1;
  ids.push_back(eos);
  ChoiceState s(tokenizer(), {}, {});
  ChoiceDelta d = feed(s, ids, FinishReason::finish_stop, eos);
  EXPECT_EQ(d.text, "one two");
  EXPECT_EQ(s.n_generated(), int(ids.size()));
  EXPECT_EQ(s.finish_reason(), "stop");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(s.stop_reason()));  // EOS: no stop_reason
  // A stop_token_ids hit is reported as the stop reason.
  auto ids2 = tokenizer().encode("one two", false);
  ChoiceConfig c;
  c.stop_token_ids = {ids2.back()};
  ChoiceState t(tokenizer(), c, {});
  EXPECT_EQ(feed(t, ids2, FinishReason::finish_stop, ids2.back()).text, "one");
  EXPECT_EQ(std::get<int32_t>(t.stop_reason()), ids2.back());
}

TEST(ChoiceState, ChatParsersTokenByToken) {
  ChoiceConfig c;
  c.chat = true;
  c.parse_reasoning = true;
  c.parse_tool_calls = true;
  const std::string text =
      "I should look it up.</think>Let me check."
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```"
      "<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  auto ids = tokenizer().encode(text, false);
  ChoiceState s(tokenizer(), c, {});
  ChoiceDelta d = feed(s, ids, FinishReason::finish_stop);
  EXPECT_EQ(d.reasoning, "I should look it up.");
  EXPECT_EQ(d.text, "Let me check.");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.tool_calls[0].arguments, "{\"city\": \"Paris\"}");
  EXPECT_EQ(s.finish_reason(), "tool_calls");
}

TEST(ChoiceState, EventsAfterTheEndAreIgnored) {
  ChoiceState s(tokenizer(), {}, {});
  auto ids = tokenizer().encode("done", false);
  feed(s, ids, FinishReason::finish_length);
  RequestOutput late;
  late.tokens.push_back({5, 0, {}});
  late.finish = FinishReason::finish_stop;
  ChoiceDelta d = s.add(late);
  EXPECT_TRUE(d.text.empty());
  EXPECT_TRUE(d.token_ids.empty());
  EXPECT_EQ(s.finish_reason(), "length");
}

}  // namespace
}  // namespace dsi::server
