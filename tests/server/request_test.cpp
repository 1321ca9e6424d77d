// Request validation of the OpenAI API: what is accepted, how it maps to sampling parameters,
// and that every rejection names its field.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace dsi::server {
namespace {

CompletionRequest completion(const std::string& text) { return parse_completion_request(Json::parse(text)); }
ChatRequest chat(const std::string& text) { return parse_chat_request(Json::parse(text), text); }

std::string rejected_param(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400) << e.what();
    return e.param();
  }
  ADD_FAILURE() << "not rejected";
  return "";
}

TEST(CompletionRequest, MapsFieldsToSampling) {
  auto r = completion(R"({"model": "m", "prompt": "hi", "max_tokens": 7, "temperature": 0, "top_p": 0.5,
                          "top_k": -1, "min_p": 0.1, "seed": -3, "n": 2, "stop": "x", "logprobs": 2,
                          "ignore_eos": true, "stop_token_ids": [4, 5], "presence_penalty": 1.5,
                          "repetition_penalty": 1.1, "min_tokens": 2, "stream": true,
                          "stream_options": {"include_usage": true}})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(*r.prompts[0].text, "hi");
  const auto& o = r.options;
  EXPECT_EQ(*o.max_tokens, 7);
  EXPECT_EQ(o.sampling.temperature, 0);
  EXPECT_EQ(o.sampling.top_p, 0.5);
  EXPECT_EQ(o.sampling.top_k, 0);  // -1 means off, as 0
  EXPECT_EQ(o.sampling.min_p, 0.1);
  EXPECT_EQ(*o.sampling.seed, uint64_t(-3));
  EXPECT_EQ(o.n, 2);
  EXPECT_EQ(o.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(o.logprobs);
  EXPECT_EQ(o.sampling.logprobs, 2);
  EXPECT_TRUE(o.sampling.ignore_eos);
  EXPECT_EQ(o.sampling.stop_token_ids, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(o.sampling.presence_penalty, 1.5);
  EXPECT_EQ(o.sampling.repetition_penalty, 1.1);
  EXPECT_EQ(o.sampling.min_tokens, 2);
  EXPECT_TRUE(o.stream);
  EXPECT_TRUE(o.include_usage);
}

TEST(CompletionRequest, Defaults) {
  auto r = completion(R"({"prompt": [1, 2, 3]})");
  EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(*r.options.max_tokens, 16);  // OpenAI's completions default
  EXPECT_EQ(r.options.sampling.temperature, 1.0);
  EXPECT_EQ(r.options.sampling.logprobs, -1);
  EXPECT_FALSE(r.options.stream);
  EXPECT_EQ(completion(R"({"prompt": "x", "max_tokens": null})").options.max_tokens, 16);  // null = absent
  EXPECT_EQ(*completion(R"({"prompt": "x", "max_tokens": 4.0})").options.max_tokens, 4);
}

TEST(CompletionRequest, PromptForms) {
  EXPECT_EQ(completion(R"({"prompt": ["a", "b"]})").prompts.size(), 2u);
  auto r = completion(R"({"prompt": [[1], [2, 3]]})");
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[1].ids, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(completion(R"({"prompt": ["a", [4]]})").prompts.size(), 2u);
  EXPECT_EQ(rejected_param([] { completion(R"({"max_tokens": 3})"); }), "prompt");
  EXPECT_EQ(rejected_param([] { completion(R"({"prompt": [1, "a"]})"); }), "prompt");
  EXPECT_EQ(rejected_param([] { completion(R"({"prompt": [1.5]})"); }), "prompt");
  EXPECT_EQ(rejected_param([] { completion(R"({"prompt": [3000000000]})"); }), "prompt");
  EXPECT_EQ(rejected_param([] { completion(R"({"prompt": {"a": 1}})"); }), "prompt");
}

TEST(CompletionRequest, RejectionsNameTheField) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"prompt": "x", "temperature": -0.1})", "temperature"},
      {R"({"prompt": "x", "temperature": "0"})", "temperature"},
      {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "x", "top_k": -2})", "top_k"},
      {R"({"prompt": "x", "min_p": 2})", "min_p"},
      {R"({"prompt": "x", "presence_penalty": 3})", "presence_penalty"},
      {R"({"prompt": "x", "repetition_penalty": 0})", "repetition_penalty"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 99999999999})", "max_tokens"},
      {R"({"prompt": "x", "n": 1000})", "n"},
      {R"({"prompt": "x", "n": 2, "best_of": 3})", "best_of"},
      {R"({"prompt": "x", "stop": ["a", 1]})", "stop"},
      {R"({"prompt": "x", "stop": [""]})", "stop"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "x", "logprobs": true})", "logprobs"},
      {R"({"prompt": "x", "echo": true, "logprobs": 1})", "echo"},
      {R"({"prompt": "x", "min_tokens": 20, "max_tokens": 10})", "min_tokens"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "x", "stream": true, "stream_options": {"bogus": true}})", "stream_options"},
      {R"({"prompt": "x", "suffix": "y"})", "suffix"},
      {R"({"prompt": "x", "logit_bias": {"one": 2}})", "logit_bias"},
      {R"({"prompt": "x", "response_format": {"type": "yaml"}})", "response_format"},
      {R"({"prompt": "x", "messages": []})", "messages"},  // a chat field on the completions endpoint
      {R"({"prompt": "x", "frobnicate": 1})", "frobnicate"},
      {R"({"prompt": "x", "model": 5})", "model"},
  };
  for (const auto& c : cases) EXPECT_EQ(rejected_param([&] { completion(c.body); }), c.param) << c.body;
  EXPECT_THROW(parse_completion_request(Json::array()), ApiError);
}

// vLLM's priority (honoured only under --scheduling-policy priority), cache_salt and
// guided_grammar / structured_outputs.grammar.
TEST(CompletionRequest, PrioritySaltAndGrammar) {
  const Json priority = Json::parse(R"({"prompt": "x", "priority": -4})");
  try {
    parse_completion_request(priority);
    ADD_FAILURE() << "a non-zero priority under fcfs was accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "priority");
    EXPECT_NE(std::string(e.what()).find("--scheduling-policy priority"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_completion_request(Json::parse(R"({"prompt": "x", "priority": 0})")).options.priority, 0);
  RequestDefaults by_priority;
  by_priority.priority_scheduling = true;
  EXPECT_EQ(parse_completion_request(priority, by_priority).options.priority, -4);
  EXPECT_EQ(rejected_param([&] { parse_completion_request(Json::parse(R"({"prompt": "x", "priority": 1.5})"), by_priority); }),
            "priority");
  EXPECT_EQ(completion(R"({"prompt": "x", "cache_salt": "tenant-7"})").options.cache_salt, "tenant-7");
  EXPECT_EQ(completion(R"({"prompt": "x", "cache_salt": null})").options.cache_salt, "");
  for (const char* bad : {R"({"prompt": "x", "cache_salt": ""})", R"({"prompt": "x", "cache_salt": 3})"})
    EXPECT_EQ(rejected_param([&] { completion(bad); }), "cache_salt") << bad;
  auto g = completion(R"({"prompt": "x", "guided_grammar": "root ::= \"a\""})");
  EXPECT_EQ(g.options.structured_kind, "grammar");
  EXPECT_EQ(g.options.structured_spec, "root ::= \"a\"");
  EXPECT_EQ(completion(R"({"prompt": "x", "structured_outputs": {"grammar": "root ::= [a-z]"}})").options.structured_kind,
            "grammar");
  EXPECT_EQ(rejected_param([&] { completion(R"({"prompt": "x", "guided_grammar": ""})"); }), "guided_grammar");
  EXPECT_EQ(rejected_param([&] { completion(R"({"prompt": "x", "guided_grammar": "root ::= \"a\"", "guided_regex": "a"})"); }),
            "guided_grammar");  // (the one parsed second is named)
}

TEST(ChatRequest, NormalisesMessages) {
  auto r = chat(R"({"messages": [{"role": "developer", "content": "be brief"},
                                 {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                                 {"role": "assistant", "content": null, "tool_calls": [
                                   {"id": "1", "function": {"name": "f", "arguments": {"x": 1}}}]},
                                 {"role": "tool", "content": "out", "tool_call_id": "1"}],
                    "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 9, "max_tokens": 4})");
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_TRUE(r.messages[2]["content"].is_null());
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");  // templates concatenate text
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["type"], "function");
  EXPECT_EQ(r.options.sampling.logprobs, 3);
  EXPECT_EQ(*r.options.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_TRUE(r.add_generation_prompt);
  EXPECT_FALSE(chat(R"({"messages": [{"role": "user", "content": "x"}]})").options.max_tokens.has_value());
}

TEST(ChatRequest, KeepsKeyOrderForTemplates) {
  auto r = chat(R"({"messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}]})");
  EXPECT_EQ(r.tools[0]["function"]["parameters"].dump(), R"({"z":1,"a":2})");
}

TEST(ChatRequest, Rejections) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"model": "m"})", "messages"},
      {R"({"messages": [{"content": "x"}]})", "messages"},
      {R"({"messages": [{"role": "user"}]})", "messages"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})", "messages"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})", "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function"}})", "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools"},
      // A member of the wrong type is a 400, not nlohmann's type_error (found by fuzz_chat_request).
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": {"name": "f"}}]})", "tools"},
      {R"({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": 1, "function": {}}]}]})",
       "messages"},
      {R"({"messages": [{"role": "user", "content": "x"}], "functions": []})", "functions"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": 3})", "chat_template_kwargs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true})",
       "continue_final_message"},
      {R"({"messages": [{"role": "user", "content": "x"}], "prompt": "x"})", "prompt"},
  };
  for (const auto& c : cases) EXPECT_EQ(rejected_param([&] { chat(c.body); }), c.param) << c.body;
}

TEST(ApiErrorJson, HasTheOpenAIShape) {
  Json j = error_json(ApiError(400, "bad 'x'", "x"));
  EXPECT_EQ(j["error"]["message"], "bad 'x'");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "x");
  EXPECT_EQ(j["error"]["code"], 400);
  EXPECT_TRUE(error_json(503, "busy")["error"]["param"].is_null());
  EXPECT_EQ(error_json(401, "no")["error"]["type"], "authentication_error");
}

}  // namespace
}  // namespace dsi::server
