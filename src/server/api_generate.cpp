// POST /v1/completions and /v1/chat/completions: from the validated request to token-id
// prompts (tokenizer, chat template) and the context-length checks; the router then starts
// the generation.
#include <algorithm>

#include "core/log.h"
#include "server/api_error.h"
#include "server/api_handlers.h"
#include "server/generation.h"
#include "server/openai_request.h"

namespace dsi::server {

void check_model_name(const ApiContext& context, const std::string& model) {
  if (model.empty()) return;
  const auto& names = context.options.served_model_names;
  if (std::find(names.begin(), names.end(), model) == names.end())
    throw ApiError(
        404, fmt::format("The model `{}` does not exist (this server serves `{}`)", clip_text(model), names.front()),
        "model");
}

namespace {

void check_vocabulary(const ApiContext& context, const std::vector<int32_t>& ids, const char* param) {
  const int64_t vocab = context.engine.config().vocab_size;
  for (int32_t id : ids)
    if (id >= vocab)
      fail_param(param, "'{}' holds token id {}, outside the model's vocabulary of {} tokens{}", param, id, vocab,
                 context.tokenizer.vocab_size() > vocab ? " (the tokenizer does not belong to this model)" : "");
}

// One line per request naming the vLLM fields accepted without effect (openai_request.h).
void warn_ignored(const std::vector<std::string>& fields) {
  if (fields.empty()) return;
  std::string names;
  for (const auto& f : fields) names += (names.empty() ? "" : ", ") + f;
  spdlog::warn("request fields accepted but ignored (no effect in dsinfer): {}", names);
}

// vLLM's truncate_prompt_tokens: keep only the last N tokens of each prompt.
void truncate_prompts(GenerationInput& in) {
  if (!in.options.truncate_prompt_tokens) return;
  const size_t keep = size_t(*in.options.truncate_prompt_tokens);
  for (auto& p : in.prompts)
    if (p.size() > keep) p.erase(p.begin(), p.end() - ptrdiff_t(keep));
}

// splitmix64's finaliser: seeds of consecutive requests that share no bit pattern.
uint64_t mix_seed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void apply_default_seed(const ApiContext& context, GenerationOptions& o) {
  if (o.sampling.seed || !context.options.default_seed) return;
  uint64_t k = context.unseeded_requests.fetch_add(1);
  o.sampling.seed = mix_seed(*context.options.default_seed ^ mix_seed(k));
}

// vLLM's bad_words: each word's tokens as written (leading spaces dropped) and with one
// leading space, so the word is barred mid-sentence too.
void tokenize_bad_words(const ApiContext& context, GenerationOptions& o) {
  for (const auto& word : o.bad_words) {
    std::string bare = word.substr(std::min(word.find_first_not_of(' '), word.size()));
    if (bare.empty()) continue;
    for (const std::string& text : {bare, " " + bare}) {
      std::vector<int32_t> ids = context.tokenizer.encode(text, false);
      if (!ids.empty()) o.sampling.bad_words_ids.push_back(std::move(ids));
    }
  }
}

// Sets the final max_tokens for every prompt: the request's (all must fit the context) or,
// when it gave none (chat), what the longest prompt leaves of the context.
void fit_context(const ApiContext& context, GenerationInput& in, const char* param) {
  // Here, not only in the engine, so that the error names the field.
  check_vocabulary(context, in.options.sampling.stop_token_ids, "stop_token_ids");
  check_vocabulary(context, in.options.sampling.allowed_token_ids, "allowed_token_ids");
  std::vector<int32_t> biased;
  for (auto [t, bias] : in.options.sampling.logit_bias) biased.push_back(t);
  check_vocabulary(context, biased, "logit_bias");
  tokenize_bad_words(context, in.options);
  if (context.structured) context.structured->apply(in.options);
  else if (!in.options.structured_kind.empty()) fail_param(in.options.structured_param, "structured outputs are off");
  for (const auto& w : in.options.sampling.bad_words_ids) check_vocabulary(context, w, "bad_words");
  const int64_t max_len = context.engine.max_model_len();
  size_t longest = 0;
  for (const auto& p : in.prompts) {
    if (p.empty()) fail_param(param, "the prompt is empty");
    if (int64_t(p.size()) >= max_len)
      fail_param(param,
                 "the prompt has {} tokens, but the model's context length is {} tokens (prompt and output "
                 "together); shorten the prompt",
                 p.size(), max_len);
    longest = std::max(longest, p.size());
  }
  GenerationOptions& o = in.options;
  if (o.max_tokens) {
    if (int64_t(longest) + *o.max_tokens > max_len)
      fail_param("max_tokens",
                 "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the "
                 "prompt, {} for the completion). Please reduce the length of the prompt or the max_tokens.",
                 max_len, int64_t(longest) + *o.max_tokens, longest, *o.max_tokens);
    o.sampling.max_tokens = *o.max_tokens;
  } else {
    o.sampling.max_tokens = int(max_len - int64_t(longest));
    if (o.default_max_tokens) o.sampling.max_tokens = std::min(o.sampling.max_tokens, *o.default_max_tokens);
  }
  if (o.sampling.min_tokens > o.sampling.max_tokens)
    fail_param("min_tokens", "'min_tokens' ({}) exceeds the {} tokens left for the output", o.sampling.min_tokens,
               o.sampling.max_tokens);
}

}  // namespace

GenerationInput prepare_completions(const ApiContext& context, const std::string& body) {
  CompletionRequest r = parse_completion_request(parse_request_body(body), context.options.defaults);
  check_model_name(context, r.model);
  warn_ignored(r.ignored_fields);
  GenerationInput in;
  in.kind = ApiKind::api_completion;
  const bool add_special = r.options.add_special_tokens.value_or(true);
  for (auto& p : r.prompts) {
    std::vector<int32_t> ids = p.text ? context.tokenizer.encode(*p.text, add_special) : std::move(p.ids);
    check_vocabulary(context, ids, "prompt");
    if (r.echo) in.echo_texts.push_back(p.text ? *p.text : context.tokenizer.decode(ids, false));
    in.prompts.push_back(std::move(ids));
  }
  in.options = std::move(r.options);
  truncate_prompts(in);
  apply_default_seed(context, in.options);
  fit_context(context, in, "prompt");
  return in;
}

namespace {

// continue_final_message: the rendered conversation ends inside the last (assistant) message,
// so generation continues it; the template's closing tokens after its content are cut.
std::string cut_after_final_message(const std::string& text, const nlohmann::ordered_json& messages) {
  const auto& content = messages.back()["content"];
  std::string last = content.is_string() ? content.get<std::string>() : "";
  size_t at = last.empty() ? std::string::npos : text.rfind(last);
  if (at == std::string::npos)
    fail_param("continue_final_message", "the chat template does not render the final message's content verbatim");
  return text.substr(0, at + last.size());
}

}  // namespace

GenerationInput prepare_chat_completions(const ApiContext& context, const std::string& raw) {
  ChatRequest r = parse_chat_request(parse_request_body(raw), raw, context.options.defaults);
  check_model_name(context, r.model);
  warn_ignored(r.ignored_fields);
  if (!context.tokenizer.has_chat_template())
    throw ApiError(400, "the tokenizer has no chat template: give one with `dsinfer serve --chat-template FILE`, or "
                        "use /v1/completions", "messages");
  std::string text = with_context("chat template", [&] {
    return context.tokenizer.apply_chat_template(r.messages, r.add_generation_prompt, r.tools, r.template_kwargs);
  });
  if (r.continue_final_message) text = cut_after_final_message(text, r.messages);
  GenerationInput in;
  in.kind = ApiKind::api_chat;
  // The rendered template already holds the BOS.
  std::vector<int32_t> ids = context.tokenizer.encode(text, r.options.add_special_tokens.value_or(false));
  check_vocabulary(context, ids, "messages");
  in.prompts.push_back(std::move(ids));
  in.parse_tool_calls = context.options.tool_parser_v3 && !r.tools.is_null() && !r.tool_choice_none;
  if (r.tool_choice_forced && !context.options.tool_parser_v3)
    fail_param("tool_choice", "'tool_choice' required or named needs the server started with --tool-call-parser "
               "deepseek_v3 (to turn the calls into tool_calls)");
  in.options = std::move(r.options);
  truncate_prompts(in);
  apply_default_seed(context, in.options);
  fit_context(context, in, "messages");
  return in;
}

}  // namespace dsi::server
