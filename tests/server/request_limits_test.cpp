// Hostile request bodies: nesting depth, numbers no field can hold, and input echoed in error
// messages. Every body goes through parse_request_body, as the server's handlers do; each
// rejection must be a 400 ApiError naming its field, never a crash or another exception.
#include <gtest/gtest.h>

#include <string>

#include "engine/sampler.h"
#include "server/api_error.h"
#include "server/openai_request.h"

namespace dsi::server {
namespace {

CompletionRequest completion(const std::string& body) { return parse_completion_request(parse_request_body(body)); }
ChatRequest chat(const std::string& body) { return parse_chat_request(parse_request_body(body), body); }

// The ApiError a body gets (status, param, message); fails the test if it is accepted.
ApiError rejection(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an ApiError: " << e.what();
    return ApiError(0, e.what());
  }
  ADD_FAILURE() << "not rejected";
  return ApiError(0, "");
}

std::string nested_array(int depth, const std::string& leaf = "1") {
  return std::string(size_t(depth), '[') + leaf + std::string(size_t(depth), ']');
}

std::string user(const std::string& content_json) {
  return R"({"messages": [{"role": "user", "content": )" + content_json + "}]";
}

constexpr int kDeep = 70000;  // the issue's case: deep enough to overflow any stack when walked recursively

TEST(RequestLimits, DeepNestingIsA400InEveryField) {
  const std::string deep = nested_array(kDeep);
  const std::string deep_object = [] {
    std::string s;
    for (int i = 0; i < kDeep; ++i) s += R"({"a":)";
    s += "1";
    s += std::string(size_t(kDeep), '}');
    return s;
  }();
  const std::vector<std::pair<std::string, std::function<void()>>> cases = {
      {"prompt", [&] { completion(R"({"prompt": )" + deep + "}"); }},
      {"stop_token_ids", [&] { completion(R"({"prompt": "hi", "stop_token_ids": )" + deep + "}"); }},
      {"stop", [&] { completion(R"({"prompt": "hi", "stop": )" + deep + "}"); }},
      {"metadata", [&] { completion(R"({"prompt": "hi", "metadata": )" + deep_object + "}"); }},
      {"unknown", [&] { completion(R"({"prompt": "hi", "unknown": )" + deep + "}"); }},
      {"messages", [&] { chat(user(deep) + "}"); }},
      {"messages", [&] {
         chat(R"({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f",
              "arguments": )" + deep_object + "}}]}]}");
       }},
      {"tools", [&] { chat(user(R"("hi")") + R"(, "tools": )" + deep + "}"); }},
      {"chat_template_kwargs", [&] { chat(user(R"("hi")") + R"(, "chat_template_kwargs": )" + deep_object + "}"); }},
      {"", [&] { completion(deep); }},
  };
  for (const auto& [param, fn] : cases) {
    ApiError e = rejection(fn);
    EXPECT_EQ(e.status(), 400) << param;
    EXPECT_EQ(e.param(), param) << e.what();
    EXPECT_NE(std::string(e.what()).find("nested deeper than 128 levels"), std::string::npos) << e.what();
    EXPECT_LT(std::string(e.what()).size(), 400u) << param;
  }
}

TEST(RequestLimits, DepthLimitIsExact) {
  // 128 levels of containers parse (the limit), 129 do not.
  EXPECT_NO_THROW(parse_json_bounded<Json>(nested_array(kMaxJsonDepth)));
  EXPECT_THROW(parse_json_bounded<Json>(nested_array(kMaxJsonDepth + 1)), JsonParseError);
  EXPECT_NO_THROW(parse_json_bounded<nlohmann::ordered_json>(nested_array(kMaxJsonDepth)));
  EXPECT_THROW(parse_json_bounded<nlohmann::ordered_json>(nested_array(kMaxJsonDepth + 1)), JsonParseError);
  // A realistic request nests far less: a tool's JSON schema with nested objects is fine.
  EXPECT_NO_THROW(chat(user(R"("hi")") + R"(, "tools": [{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object",
      "properties": {"b": {"type": "string"}}}}}}}}]})"));
}

TEST(RequestLimits, DeepErrorNamesThePath) {
  ApiError e = rejection([&] { chat(user(R"([{"type": "text", "text": )" + nested_array(200) + "}]") + "}"); });
  EXPECT_EQ(e.param(), "messages");
  EXPECT_NE(std::string(e.what()).find("messages[0].content[0].text[0]"), std::string::npos) << e.what();
}

TEST(RequestLimits, NumberOverflowIsA400NamingTheField) {
  const std::vector<std::pair<std::string, std::string>> completions = {
      {"max_tokens", R"({"prompt": "hi", "max_tokens": 1e400})"},
      {"max_tokens", R"({"prompt": "hi", "max_tokens": -1e400})"},
      {"max_tokens", R"({"prompt": "hi", "max_tokens": 99999999999999999999999})"},
      {"max_tokens", R"({"prompt": "hi", "max_tokens": 1e300})"},
      {"max_tokens", R"({"prompt": "hi", "max_tokens": 3000000000})"},
      {"temperature", R"({"prompt": "hi", "temperature": 1e999999})"},
      {"top_p", R"({"prompt": "hi", "top_p": -1e400})"},
      {"top_k", R"({"prompt": "hi", "top_k": 1e20})"},
      {"n", R"({"prompt": "hi", "n": 18446744073709551616})"},
      {"seed", R"({"prompt": "hi", "seed": 1e30})"},
      {"seed", R"({"prompt": "hi", "seed": 18446744073709551615})"},
      {"logprobs", R"({"prompt": "hi", "logprobs": 1e10})"},
      {"min_tokens", R"({"prompt": "hi", "min_tokens": 1e400})"},
      {"prompt", R"({"prompt": [1, 2, 1e400]})"},
      {"prompt", R"({"prompt": [1, 2, 99999999999999999999]})"},
      {"prompt", R"({"prompt": [[1], [2, 5000000000]]})"},
      {"stop_token_ids", R"({"prompt": "hi", "stop_token_ids": [1e9]})"},
      {"stop_token_ids", R"({"prompt": "hi", "stop_token_ids": [1e400]})"},
      {"stop_token_ids", R"({"prompt": "hi", "stop_token_ids": [-1]})"},
      {"metadata", R"({"prompt": "hi", "metadata": {"x": [1e400]}})"},
  };
  for (const auto& item : completions) {
    const std::string &param = item.first, &body = item.second;  // (clang 14 cannot capture bindings)
    ApiError e = rejection([&] { completion(body); });
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body << ": " << e.what();
  }
  const std::vector<std::pair<std::string, std::string>> chats = {
      {"max_completion_tokens", user(R"("hi")") + R"(, "max_completion_tokens": 1e400})"},
      {"top_logprobs", user(R"("hi")") + R"(, "logprobs": true, "top_logprobs": 1e19})"},
      {"messages", user(R"("hi", "x": 1e400)") + "}"},
      {"tools", user(R"("hi")") + R"(, "tools": [{"type": "function", "function": {"name": "f", "x": -1e400}}]})"},
  };
  for (const auto& item : chats) {
    const std::string &param = item.first, &body = item.second;
    ApiError e = rejection([&] { chat(body); });
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body << ": " << e.what();
  }
}

TEST(RequestLimits, OverflowMessageNamesTheValue) {
  ApiError e = rejection([&] { completion(R"({"prompt": "hi", "max_tokens": 1e400})"); });
  EXPECT_NE(std::string(e.what()).find("number out of range in 'max_tokens'"), std::string::npos) << e.what();
  e = rejection([&] { completion(R"({"prompt": [[1], [2, 3, 1e400]]})"); });
  EXPECT_NE(std::string(e.what()).find("'prompt[1][2]'"), std::string::npos) << e.what();
}

TEST(RequestLimits, EchoedInputIsClipped) {
  const std::string big(1 << 20, 'k');
  const std::vector<std::function<void()>> cases = {
      [&] { completion(R"({"prompt": "hi", ")" + big + R"(": 1})"); },
      [&] { completion(R"({"prompt": [1, ")" + big + R"("]})"); },
      [&] { completion(R"({"prompt": "hi", "stop_token_ids": [")" + big + R"("]})"); },
      [&] { completion(R"({"prompt": "hi", "stream": true, "stream_options": {")" + big + R"(": 1}})"); },
      [&] { completion(R"({"prompt": "hi", "max_tokens": 1)" + std::string(1 << 20, '0') + "e999999}"); },
      [&] { completion(R"({"prompt": ")" + big + R"(\q"})"); },  // a syntax error after a long string
      [&] { completion(R"({"prompt": ")" + big + "\xff\"}"); },  // invalid UTF-8 after a long string
      [&] { chat(R"({"messages": [{"role": ")" + big + R"(", "content": "x"}]})"); },
      [&] { chat(user(R"([{"type": ")" + big + R"("}])") + "}"); },
      [&] { chat(user(R"("hi")") + R"(, "tool_choice": ")" + big + R"("})"); },
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    ApiError e = rejection(cases[i]);
    EXPECT_EQ(e.status(), 400) << i;
    EXPECT_LT(std::string(e.what()).size(), 600u) << i << ": " << std::string(e.what()).substr(0, 300);
    EXPECT_LE(error_json(e).dump().size(), kMaxErrorMessageBytes + 300) << i;
  }
}

TEST(RequestLimits, ErrorJsonBoundsAnyMessage) {
  Json j = error_json(400, std::string(1 << 20, 'm'), std::string(1 << 20, 'p'));
  EXPECT_LE(j["error"]["message"].get<std::string>().size(), kMaxErrorMessageBytes + 32);
  EXPECT_LE(j["error"]["param"].get<std::string>().size(), 132u);
}

TEST(RequestLimits, ClipTextKeepsWholeCharacters) {
  EXPECT_EQ(clip_text("short"), "short");
  std::string s(99, 'a');
  s += "\xc3\xa9\xc3\xa9";  // é é: the cut at 100 falls inside the first
  EXPECT_EQ(clip_text(s), std::string(99, 'a') + "... (103 bytes)");
}

// The request parser and the sampler accept the same repetition_penalty values: one range,
// stated once (kMaxRepetitionPenalty).
TEST(RequestLimits, RepetitionPenaltyRangeMatchesTheSampler) {
  for (double v : {-1.0, 0.0, 1e-9, 1.0, 9.99, 10.0, 10.01, 50.0, 100.0, 101.0}) {
    const std::string body = R"({"prompt": "hi", "repetition_penalty": )" + fmt::format("{}", v) + "}";
    bool parser_accepts = true;
    try {
      completion(body);
    } catch (const ApiError& e) {
      parser_accepts = false;
      EXPECT_EQ(e.param(), "repetition_penalty");
    }
    SamplingParams p;
    p.repetition_penalty = v;
    bool sampler_accepts = true;
    try {
      validate_sampling(p, 100);
    } catch (const Error&) {
      sampler_accepts = false;
    }
    EXPECT_EQ(parser_accepts, sampler_accepts) << "repetition_penalty " << v;
  }
}

}  // namespace
}  // namespace dsi::server
