#include "server/response_json.h"

#include <cmath>

#include <fmt/format.h>

#include <random>

namespace dsi::server {

Json usage_json(const Usage& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

std::string TokenSpeller::spell(int32_t id) const {
  if (as_token_ids) return fmt::format("token_id:{}", id);
  int32_t one[1] = {id};
  return tokenizer.decode(one, false);
}

int64_t utf8_length(std::string_view text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;  // count every byte that starts a character
  return n;
}

// JSON has no -inf: a token the model all but excluded (chosen anyway under logit_bias or
// allowed_token_ids, its float log-probability underflowed) is reported as -9999, as vLLM does.
namespace {
double json_logprob(float logprob) { return std::isfinite(logprob) ? double(logprob) : -9999.0; }
}  // namespace

Json completion_logprobs_json(const TokenSpeller& speller, const std::vector<LogprobEntry>& entries, int top_n,
                              int64_t& offset) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(), offsets = Json::array();
  for (const LogprobEntry& e : entries) {
    std::string text = speller.spell(e.token);
    offsets.push_back(offset);
    offset += utf8_length(text);
    token_logprobs.push_back(json_logprob(e.logprob));
    Json alternatives = Json::object();
    for (int i = 0; i < std::min(top_n, int(e.top.size())); ++i)
      alternatives[speller.spell(e.top[size_t(i)].token)] = json_logprob(e.top[size_t(i)].logprob);
    top.push_back(std::move(alternatives));
    tokens.push_back(std::move(text));
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

namespace {
Json byte_list(const std::string& s) {
  Json bytes = Json::array();
  for (unsigned char c : s) bytes.push_back(int(c));
  return bytes;
}
}  // namespace

Json chat_logprobs_json(const TokenSpeller& speller, const std::vector<LogprobEntry>& entries) {
  Json content = Json::array();
  for (const LogprobEntry& e : entries) {
    std::string text = speller.spell(e.token);
    Json top = Json::array();
    for (const TokenLogprob& alt : e.top) {
      std::string alt_text = speller.spell(alt.token);
      top.push_back({{"token", alt_text}, {"logprob", json_logprob(alt.logprob)}, {"bytes", byte_list(alt_text)}});
    }
    content.push_back(
        {{"token", text}, {"logprob", json_logprob(e.logprob)}, {"bytes", byte_list(text)}, {"top_logprobs", std::move(top)}});
  }
  return Json{{"content", std::move(content)}};
}

Json tool_call_json(const ToolCall& call, const std::string& id, std::optional<int> index) {
  Json j = {{"id", id}, {"type", call.type}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
  if (index) j["index"] = *index;
  return j;
}

Json stop_reason_json(const std::variant<std::monostate, std::string, int32_t>& reason) {
  if (auto* s = std::get_if<std::string>(&reason)) return *s;
  if (auto* id = std::get_if<int32_t>(&reason)) return *id;
  return nullptr;
}

Json chunk_json(const ResponseMeta& meta, Json choices) {
  return Json{{"id", meta.id},
              {"object", meta.kind == ApiKind::api_chat ? "chat.completion.chunk" : "text_completion"},
              {"created", meta.created},
              {"model", meta.model},
              {"choices", std::move(choices)}};
}

std::string random_id(const char* prefix) {
  std::random_device device;
  std::uniform_int_distribution<uint64_t> dist;
  return fmt::format("{}{:016x}{:016x}", prefix, dist(device), dist(device));
}

}  // namespace dsi::server
