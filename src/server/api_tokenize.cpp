// vLLM's POST /tokenize and /detokenize: the served tokenizer as a service, so clients can
// count tokens or build token-id prompts without a copy of it.
#include "server/api_error.h"
#include "server/api_handlers.h"

namespace dsi::server {

namespace {

void check_fields(const Json& body, std::initializer_list<std::string_view> known) {
  if (!body.is_object()) fail_param("", "the request body must be a JSON object");
  for (const auto& [key, value] : body.items())
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail_param(key, "Unrecognized request argument supplied: {}", clip_text(key));
}

bool flag(const Json& body, const char* key, bool fallback) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail_param(key, "'{}' must be a boolean", key);
  return it->get<bool>();
}

std::string model_of(const Json& body) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) fail_param("model", "'model' must be a string");
  return it->get<std::string>();
}

}  // namespace

Json tokenize_response(const ApiContext& context, const std::string& raw) {
  Json body = parse_request_body(raw);
  check_fields(body, {"model", "prompt", "messages", "add_special_tokens", "add_generation_prompt",
                      "return_token_strs", "tools", "chat_template_kwargs"});
  check_model_name(context, model_of(body));
  const bool has_prompt = body.contains("prompt"), has_messages = body.contains("messages");
  if (has_prompt == has_messages) fail_param("prompt", "give exactly one of 'prompt' or 'messages'");
  std::vector<int32_t> ids;
  if (has_prompt) {
    if (!body["prompt"].is_string()) fail_param("prompt", "'prompt' must be a string");
    ids = context.tokenizer.encode(body["prompt"].get<std::string>(), flag(body, "add_special_tokens", true));
  } else {
    if (!context.tokenizer.has_chat_template()) fail_param("messages", "the tokenizer has no chat template");
    auto ordered = parse_json_bounded<nlohmann::ordered_json>(raw);
    if (!ordered["messages"].is_array()) fail_param("messages", "'messages' must be an array");
    nlohmann::ordered_json tools = ordered.contains("tools") ? ordered["tools"] : nlohmann::ordered_json(nullptr);
    nlohmann::ordered_json kwargs =
        ordered.contains("chat_template_kwargs") ? ordered["chat_template_kwargs"] : nlohmann::ordered_json::object();
    if (!kwargs.is_object()) fail_param("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    std::string text = with_context("chat template", [&] {
      return context.tokenizer.apply_chat_template(ordered["messages"], flag(body, "add_generation_prompt", true),
                                                   tools, kwargs);
    });
    ids = context.tokenizer.encode(text, flag(body, "add_special_tokens", false));
  }
  Json out = {{"count", ids.size()}, {"max_model_len", context.engine.max_model_len()}, {"tokens", ids}};
  if (flag(body, "return_token_strs", false)) {
    Json strs = Json::array();
    for (int32_t id : ids) strs.push_back(context.tokenizer.id_to_token(id).value_or(""));
    out["token_strs"] = std::move(strs);
  }
  return out;
}

Json detokenize_response(const ApiContext& context, const std::string& raw) {
  Json body = parse_request_body(raw);
  check_fields(body, {"model", "tokens"});
  check_model_name(context, model_of(body));
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) fail_param("tokens", "'tokens' must be an array of token ids");
  std::vector<int32_t> ids;
  for (const auto& t : *it) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      fail_param("tokens", "'tokens' must hold non-negative integer token ids, found {}", clip_text(t.dump()));
    // decode() drops ids it does not know; asked for by a client, one is a mistake to report.
    const auto id = int32_t(t.get<int64_t>());
    if (!context.tokenizer.is_known(id))
      fail_param("tokens", "token id {} is not in the tokenizer's vocabulary ({} tokens)", id,
                 context.tokenizer.vocab_size());
    ids.push_back(id);
  }
  return Json{{"prompt", context.tokenizer.decode(ids, false)}};
}

}  // namespace dsi::server
