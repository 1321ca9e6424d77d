#include "server/openai_request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>

#include "grammar/json_schema.h"
#include "grammar/regex.h"
#include "server/api_error.h"

namespace dsi::server {

namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr int kMaxN = 128;            // choices per prompt
constexpr int kMaxTopLogprobs = 20;   // as vLLM; --max-logprobs may only lower it (the sampler keeps 20)
constexpr size_t kMaxStopStrings = 16;

// Fields both endpoints know. Each list is sorted only for reading; lookups are linear.
constexpr std::string_view kCommonFields[] = {
    "add_special_tokens", "best_of", "frequency_penalty", "ignore_eos", "include_stop_str_in_output",
    "logit_bias", "logprobs", "max_tokens", "metadata", "min_p", "min_tokens", "model", "n",
    "presence_penalty", "prompt_cache_key", "repetition_penalty", "response_format", "return_token_ids",
    "return_tokens_as_token_ids", "safety_identifier", "seed", "service_tier", "skip_special_tokens",
    "spaces_between_special_tokens", "stop", "stop_token_ids", "store", "stream", "stream_options",
    "temperature", "top_k", "top_p", "user"};
constexpr std::string_view kCompletionFields[] = {"echo", "max_completion_tokens", "prompt", "suffix"};
// vLLM's extensions whose effect is not a different result here: accepted, and the handler
// logs one warning per request naming those present (request_id is honoured: the response id).
// guided_decoding_backend / guided_whitespace_pattern only tune guided decoding, which a
// request without guided_* does not use; length_penalty only acts with beam search.
constexpr std::string_view kIgnoredFields[] = {
    "guided_decoding_backend", "guided_whitespace_pattern", "kv_transfer_params", "length_penalty",
    "mm_processor_kwargs", "vllm_xargs"};
// vLLM's extensions that would change the result and that dsinfer cannot honour yet: a 400
// that says so rather than "unrecognized", and their harmless values (false, 0, empty) pass.
constexpr std::string_view kUnsupportedFields[] = {
    "documents", "logits_processors", "prompt_logprobs", "structural_tag", "use_beam_search"};
// Handled below: request_id (the response id), priority, cache_salt, truncate_prompt_tokens.
constexpr std::string_view kVllmFields[] = {"allowed_token_ids", "bad_words", "cache_salt", "guided_choice", "guided_grammar",
                                            "guided_json", "guided_regex", "priority", "request_id",
                                            "structured_outputs", "truncate_prompt_tokens"};
constexpr std::string_view kChatFields[] = {
    "add_generation_prompt", "audio", "chat_template", "chat_template_kwargs", "continue_final_message",
    "function_call", "functions", "max_completion_tokens", "messages", "modalities", "parallel_tool_calls",
    "prediction", "reasoning_effort", "tool_choice", "tools", "top_logprobs", "verbosity", "web_search_options"};

template <size_t N>
bool contains(const std::string_view (&list)[N], std::string_view key) {
  return std::find(std::begin(list), std::end(list), key) != std::end(list);
}

// A value that asks for nothing: null, false, 0, "" or an empty array / object.
bool is_harmless(const Json& v) {
  return v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_number() && v.get<double>() == 0) ||
         (v.is_string() && v.get_ref<const std::string&>().empty()) ||
         ((v.is_array() || v.is_object()) && v.empty());
}

// Returns the names of the accepted-and-ignored fields present, in the body's order.
std::vector<std::string> check_known_fields(const Json& body, bool chat) {
  std::vector<std::string> ignored;
  for (const auto& [key, value] : body.items()) {
    if (contains(kCommonFields, key) || contains(kVllmFields, key) ||
        (chat ? contains(kChatFields, key) : contains(kCompletionFields, key)))
      continue;
    if (contains(kIgnoredFields, key)) {
      ignored.push_back(key);
      continue;
    }
    if (contains(kUnsupportedFields, key)) {
      if (is_harmless(value)) continue;
      fail_param(key, "'{}' is not supported by dsinfer yet (it would change the result, so it is refused rather "
                 "than ignored)", key);
    }
    fail_param(key, "Unrecognized request argument supplied: {}", clip_text(key));
  }
  return ignored;
}

std::string type_name(const Json& j) { return std::string(json_type_name(j)); }

// Typed optional fields; null counts as absent, as in the OpenAI API.
const Json* field(const Json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<bool> get_bool(const Json& body, const char* key) {
  const Json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) fail_param(key, "'{}' must be a boolean, got {}", key, type_name(*v));
  return v->get<bool>();
}

std::optional<double> get_number(const Json& body, const char* key) {
  const Json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) fail_param(key, "'{}' must be a number, got {}", key, type_name(*v));
  return v->get<double>();
}

std::optional<int64_t> get_integer(const Json& body, const char* key) {
  const Json* v = field(body, key);
  if (!v) return std::nullopt;
  // 5.0 is accepted as 5 (JSON has one number type); 5.5 is not an integer.
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (d != std::floor(d)) fail_param(key, "'{}' must be an integer, got {}", key, v->dump());
    // Whole numbers beyond 2^53 lost digits on the way in (and 1e300 fits no integer field).
    if (std::abs(d) > 9.0e15) fail_param(key, "'{}' = {} is out of range", key, v->dump());
    return int64_t(d);
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    fail_param(key, "'{}' = {} is out of range", key, v->dump());
  if (!v->is_number_integer()) fail_param(key, "'{}' must be an integer, got {}", key, type_name(*v));
  return v->get<int64_t>();
}

int get_int_in(const Json& body, const char* key, int64_t lo, int64_t hi, int fallback) {
  auto v = get_integer(body, key);
  if (!v) return fallback;
  if (*v < lo || *v > hi) fail_param(key, "'{}' must be in [{}, {}], got {}", key, lo, hi, *v);
  return int(*v);
}

double get_number_in(const Json& body, const char* key, double lo, double hi, double fallback, bool lo_open = false) {
  auto v = get_number(body, key);
  if (!v) return fallback;
  if (!std::isfinite(*v) || (lo_open ? *v <= lo : *v < lo) || *v > hi)
    fail_param(key, "'{}' must be in {}{}, {}], got {}", key, lo_open ? "(" : "[", lo, hi, *v);
  return *v;
}

std::optional<std::string> get_string(const Json& body, const char* key) {
  const Json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) fail_param(key, "'{}' must be a string, got {}", key, type_name(*v));
  return v->get<std::string>();
}

void reject_if_present(const Json& body, const char* key, const char* why) {
  if (field(body, key)) fail_param(key, "'{}' is not supported: {}", key, why);
}

std::vector<std::string> parse_stop(const Json& body) {
  const Json* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> stop;
  if (v->is_string()) {
    stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) fail_param("stop", "'stop' has {} strings, at most {} are allowed", v->size(), kMaxStopStrings);
    for (const auto& s : *v) {
      if (!s.is_string()) fail_param("stop", "'stop' must be a string or an array of strings, found {}", type_name(s));
      stop.push_back(s.get<std::string>());
    }
  } else {
    fail_param("stop", "'stop' must be a string or an array of strings, got {}", type_name(*v));
  }
  for (const auto& s : stop)
    if (s.empty()) fail_param("stop", "'stop' strings must not be empty");
  return stop;
}

std::vector<int32_t> parse_id_list(const Json& list, const char* key) {
  std::vector<int32_t> ids;
  ids.reserve(list.size());
  for (const auto& t : list) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
      fail_param(key, "'{}' must hold non-negative integer token ids, found {}", key, clip_text(t.dump()));
    ids.push_back(int32_t(t.get<int64_t>()));
  }
  return ids;
}

void parse_stream_options(const Json& body, GenerationOptions& o) {
  o.stream = get_bool(body, "stream").value_or(false);
  const Json* so = field(body, "stream_options");
  if (!so) return;
  if (!o.stream) fail_param("stream_options", "'stream_options' is only allowed when 'stream' is true");
  if (!so->is_object()) fail_param("stream_options", "'stream_options' must be an object, got {}", type_name(*so));
  for (const auto& [key, value] : so->items())
    if (key != "include_usage" && key != "continuous_usage_stats")
      fail_param("stream_options", "Unrecognized argument in 'stream_options': {}", clip_text(key));
  o.include_usage = get_bool(*so, "include_usage").value_or(false);
  o.continuous_usage_stats = get_bool(*so, "continuous_usage_stats").value_or(false);
}

void set_structured(GenerationOptions& o, const char* param, std::string kind, Json spec) {
  if (!o.structured_kind.empty())
    fail_param(param, "'{}' and '{}' both ask for a structured output: give one", o.structured_param, param);
  o.structured_kind = std::move(kind);
  o.structured_spec = std::move(spec);
  o.structured_param = param;
}

// A schema given as an object or as JSON text (vLLM takes both for guided_json).
Json schema_of(const Json& v, const char* param) {
  if (v.is_object() || v.is_boolean()) return v;
  if (v.is_string()) {
    try {
      return parse_json_bounded<Json>(v.get_ref<const std::string&>());
    } catch (const std::exception& e) {
      fail_param(param, "'{}' is not a JSON schema: {}", param, e.what());
    }
  }
  fail_param(param, "'{}' must be a JSON schema (an object), got {}", param, json_type_name(v));
}

// response_format, vLLM's guided_* and structured_outputs: at most one structured output.
void parse_structured(const Json& body, GenerationOptions& o) {
  if (const Json* rf = field(body, "response_format")) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
      fail_param("response_format", "'response_format' must be an object with a string 'type'");
    const std::string type = (*rf)["type"].get<std::string>();
    if (type == "json_object") {
      set_structured(o, "response_format", "json_object", nullptr);
    } else if (type == "json_schema") {
      const Json* js = field(*rf, "json_schema");
      if (!js || !js->is_object())
        fail_param("response_format", "'response_format' json_schema needs a 'json_schema' object");
      const Json* schema = field(*js, "schema");
      if (!schema) schema = field(*js, "json_schema");  // an older spelling some clients send
      set_structured(o, "response_format", "json_schema",
                     schema ? schema_of(*schema, "response_format") : Json::object());
    } else if (type != "text") {
      fail_param("response_format", "'response_format' type '{}' is not supported (text, json_object, json_schema)",
                 clip_text(type));
    }
  }
  if (const Json* g = field(body, "guided_json")) set_structured(o, "guided_json", "json_schema", schema_of(*g, "guided_json"));
  if (const Json* g = field(body, "guided_regex")) {
    if (!g->is_string()) fail_param("guided_regex", "'guided_regex' must be a string");
    set_structured(o, "guided_regex", "regex", *g);
  }
  if (const Json* g = field(body, "guided_choice")) {
    if (!g->is_array() || g->empty()) fail_param("guided_choice", "'guided_choice' must be a non-empty array of strings");
    set_structured(o, "guided_choice", "choice", *g);
  }
  if (const Json* g = field(body, "guided_grammar")) {
    if (!g->is_string() || g->get_ref<const std::string&>().empty())
      fail_param("guided_grammar", "'guided_grammar' must be a non-empty string (an EBNF grammar: root ::= ...)");
    set_structured(o, "guided_grammar", "grammar", *g);
  }
  if (const Json* so = field(body, "structured_outputs")) {
    if (!so->is_object()) fail_param("structured_outputs", "'structured_outputs' must be an object");
    for (const auto& [key, value] : so->items()) {
      if (value.is_null() || key == "disable_fallback" || key == "disable_any_whitespace" ||
          key == "disable_additional_properties" || key == "whitespace_pattern")
        continue;
      if (key == "json") set_structured(o, "structured_outputs", "json_schema", schema_of(value, "structured_outputs"));
      else if (key == "regex" && value.is_string()) set_structured(o, "structured_outputs", "regex", value);
      else if (key == "choice" && value.is_array()) set_structured(o, "structured_outputs", "choice", value);
      else if (key == "grammar" && value.is_string()) set_structured(o, "structured_outputs", "grammar", value);
      else if (key == "json_object" && value.is_boolean()) {
        if (value.get<bool>()) set_structured(o, "structured_outputs", "json_object", nullptr);
      } else if (key == "structural_tag")
        fail_param("structured_outputs", "'structured_outputs.{}' is not supported yet (json, regex, choice, grammar, "
                   "json_object)", key);
      else
        fail_param("structured_outputs", "'structured_outputs.{}' is not recognised or has the wrong type", clip_text(key));
    }
  }
}

// Everything but the prompt, logprobs and the endpoint-specific token limit.
GenerationOptions parse_common(const Json& body, const RequestDefaults& d) {
  GenerationOptions o;
  SamplingParams& s = o.sampling;
  s.temperature = get_number_in(body, "temperature", 0, 100, d.temperature);
  s.top_p = get_number_in(body, "top_p", 0, 1, d.top_p, true);
  s.top_k = get_int_in(body, "top_k", -1, std::numeric_limits<int32_t>::max(), d.top_k);
  if (s.top_k == -1) s.top_k = 0;
  s.min_p = get_number_in(body, "min_p", 0, 1, d.min_p);
  s.presence_penalty = get_number_in(body, "presence_penalty", -2, 2, 0.0);
  s.frequency_penalty = get_number_in(body, "frequency_penalty", -2, 2, 0.0);
  s.repetition_penalty = get_number_in(body, "repetition_penalty", 0, kMaxRepetitionPenalty, d.repetition_penalty, true);
  if (auto seed = get_integer(body, "seed")) s.seed = uint64_t(*seed);  // negative seeds wrap, as a bit pattern
  s.min_tokens = get_int_in(body, "min_tokens", 0, std::numeric_limits<int32_t>::max(), 0);
  s.ignore_eos = get_bool(body, "ignore_eos").value_or(false);
  if (const Json* ids = field(body, "stop_token_ids")) {
    if (!ids->is_array()) fail_param("stop_token_ids", "'stop_token_ids' must be an array of integers");
    s.stop_token_ids = parse_id_list(*ids, "stop_token_ids");
  }
  o.n = get_int_in(body, "n", 1, kMaxN, 1);
  if (auto best_of = get_integer(body, "best_of"); best_of && *best_of != o.n)
    fail_param("best_of", "'best_of' other than n is not supported (got best_of {} with n {})", *best_of, o.n);
  o.stop = parse_stop(body);
  o.include_stop_str_in_output = get_bool(body, "include_stop_str_in_output").value_or(false);
  o.skip_special_tokens = get_bool(body, "skip_special_tokens").value_or(true);
  get_bool(body, "spaces_between_special_tokens");  // type-checked; DeepSeek's decoder adds no spaces either way
  o.return_token_ids = get_bool(body, "return_token_ids").value_or(false);
  o.return_tokens_as_token_ids = get_bool(body, "return_tokens_as_token_ids").value_or(false);
  o.add_special_tokens = get_bool(body, "add_special_tokens");
  parse_stream_options(body, o);

  if (const Json* bias = field(body, "logit_bias")) {
    if (!bias->is_object()) fail_param("logit_bias", "'logit_bias' must be an object of token id -> bias");
    for (const auto& [key, value] : bias->items()) {
      // Keys are token ids written as strings ("50256"), as in the OpenAI API.
      size_t used = 0;
      long long t = -1;
      try {
        t = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != key.size() || t < 0 || t > std::numeric_limits<int32_t>::max())
        fail_param("logit_bias", "'logit_bias' keys must be token ids, got \"{}\"", clip_text(key));
      if (!value.is_number() || !(value.get<double>() >= -100 && value.get<double>() <= 100))
        fail_param("logit_bias", "'logit_bias' values must be numbers in [-100, 100], got {} for token {}",
                   clip_text(value.dump()), t);
      s.logit_bias.emplace_back(int32_t(t), float(value.get<double>()));
    }
    std::sort(s.logit_bias.begin(), s.logit_bias.end());
    for (size_t i = 1; i < s.logit_bias.size(); ++i)
      if (s.logit_bias[i].first == s.logit_bias[i - 1].first)
        fail_param("logit_bias", "'logit_bias' names token {} twice", s.logit_bias[i].first);
  }
  if (const Json* ids = field(body, "allowed_token_ids")) {
    if (!ids->is_array() || ids->empty())
      fail_param("allowed_token_ids", "'allowed_token_ids' must be a non-empty array of token ids");
    s.allowed_token_ids = parse_id_list(*ids, "allowed_token_ids");
    std::sort(s.allowed_token_ids.begin(), s.allowed_token_ids.end());
    s.allowed_token_ids.erase(std::unique(s.allowed_token_ids.begin(), s.allowed_token_ids.end()),
                              s.allowed_token_ids.end());
  }
  if (const Json* words = field(body, "bad_words")) {
    if (!words->is_array()) fail_param("bad_words", "'bad_words' must be an array of strings");
    for (const auto& w : *words) {
      if (!w.is_string() || w.get_ref<const std::string&>().empty())
        fail_param("bad_words", "'bad_words' must hold non-empty strings");
      o.bad_words.push_back(w.get<std::string>());
    }
  }
  parse_structured(body, o);
  get_string(body, "user");
  get_string(body, "service_tier");
  get_string(body, "prompt_cache_key");
  get_string(body, "safety_identifier");
  get_bool(body, "store");
  if (auto id = get_string(body, "request_id")) o.request_id = clip_text(*id);
  // vLLM refuses a non-zero priority unless --scheduling-policy priority.
  if (auto priority = get_integer(body, "priority"); priority && *priority != 0) {
    if (!d.priority_scheduling)
      fail_param("priority", "'priority' {} needs the server started with --scheduling-policy priority (it runs "
                 "fcfs: first come, first served); send 0 or leave it out", *priority);
    o.priority = *priority;
  }
  if (const Json* salt = field(body, "cache_salt")) {
    if (!salt->is_string() || salt->get_ref<const std::string&>().empty())
      fail_param("cache_salt", "'cache_salt' must be a non-empty string, got {}",
                 salt->is_string() ? std::string("\"\"") : type_name(*salt));
    o.cache_salt = salt->get<std::string>();
  }
  if (auto t = get_integer(body, "truncate_prompt_tokens")) {
    if (*t < 1 || *t > std::numeric_limits<int32_t>::max())
      fail_param("truncate_prompt_tokens", "'truncate_prompt_tokens' must be a positive integer, got {}", *t);
    o.truncate_prompt_tokens = int(*t);
  }
  if (const Json* md = field(body, "metadata"); md && !md->is_object())
    fail_param("metadata", "'metadata' must be an object, got {}", type_name(*md));
  return o;
}

int parse_max_tokens(const Json& body, const char* key) {
  auto v = get_integer(body, key);
  if (*v < 1) fail_param(key, "'{}' must be at least 1, got {}", key, *v);
  if (*v > std::numeric_limits<int32_t>::max()) fail_param(key, "'{}' = {} is out of range", key, *v);
  return int(*v);
}

void check_logprobs(const GenerationOptions& o, const RequestDefaults& d, const char* key) {
  if (o.logprobs && o.top_logprobs > d.max_logprobs)
    fail_param(key, "'{}' = {} exceeds the server's --max-logprobs {}", key, o.top_logprobs, d.max_logprobs);
}

void check_min_tokens(GenerationOptions& o) {
  if (o.max_tokens && o.sampling.min_tokens > *o.max_tokens)
    fail_param("min_tokens", "'min_tokens' ({}) must not exceed 'max_tokens' ({})", o.sampling.min_tokens, *o.max_tokens);
}

std::string parse_model(const Json& body) {
  auto model = get_string(body, "model");
  return model.value_or("");
}

void require_object(const Json& body) {
  if (!body.is_object()) fail_param("", "the request body must be a JSON object, got {}", type_name(body));
}

std::vector<PromptInput> parse_prompt(const Json& body) {
  const Json* p = field(body, "prompt");
  if (!p) fail_param("prompt", "'prompt' is required");
  std::vector<PromptInput> prompts;
  auto text_prompt = [&](const Json& s) {
    PromptInput in;
    in.text = s.get<std::string>();
    if (in.text->empty()) fail_param("prompt", "'prompt' is empty");
    prompts.push_back(std::move(in));
  };
  auto id_prompt = [&](const Json& list) {
    PromptInput in;
    in.ids = parse_id_list(list, "prompt");
    if (in.ids.empty()) fail_param("prompt", "'prompt' is empty");
    prompts.push_back(std::move(in));
  };
  if (p->is_string()) {
    text_prompt(*p);
  } else if (p->is_array()) {
    if (p->empty()) fail_param("prompt", "'prompt' is empty");
    const Json& first = p->front();
    if (first.is_number()) {
      id_prompt(*p);
    } else {
      for (const auto& item : *p) {
        if (item.is_string()) text_prompt(item);
        else if (item.is_array()) id_prompt(item);
        else
          fail_param("prompt",
                     "'prompt' must be a string, an array of strings, an array of token ids or an array of such "
                     "arrays; found an element of type {}",
                     type_name(item));
      }
    }
  } else {
    fail_param("prompt", "'prompt' must be a string or an array, got {}", type_name(*p));
  }
  return prompts;
}

// Chat message content: a string, null, or text parts joined with newlines (as vLLM's
// "string" content format does).
OrderedJson normalise_content(const OrderedJson& content, size_t index) {
  if (content.is_string() || content.is_null()) return content;
  if (!content.is_array())
    fail_param("messages", "messages[{}].content must be a string, null or an array of parts, got {}", index,
               content.type_name());
  std::string joined;
  bool first = true;
  for (const auto& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      fail_param("messages", "messages[{}].content parts must be objects with a 'type'", index);
    std::string type = part["type"].get<std::string>();
    if (type != "text")
      fail_param("messages", "messages[{}].content part of type '{}' is not supported (text only)", index,
                 clip_text(type));
    if (!part.contains("text") || !part["text"].is_string())
      fail_param("messages", "messages[{}].content text part needs a string 'text'", index);
    if (!first) joined += '\n';
    joined += part["text"].get<std::string>();
    first = false;
  }
  return joined;
}

OrderedJson parse_messages(const OrderedJson& raw) {
  if (!raw.is_array()) fail_param("messages", "'messages' must be an array, got {}", raw.type_name());
  if (raw.empty()) fail_param("messages", "'messages' is empty");
  OrderedJson messages = OrderedJson::array();
  for (size_t i = 0; i < raw.size(); ++i) {
    OrderedJson m = raw[i];
    if (!m.is_object()) fail_param("messages", "messages[{}] must be an object, got {}", i, m.type_name());
    if (!m.contains("role") || !m["role"].is_string()) fail_param("messages", "messages[{}] needs a string 'role'", i);
    std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool")
      fail_param("messages", "messages[{}].role '{}' is not one of system, developer, user, assistant, tool", i,
                 clip_text(role));
    if (role == "developer") m["role"] = "system";  // OpenAI's newer name for the system prompt
    m["content"] = normalise_content(m.contains("content") ? m["content"] : OrderedJson(nullptr), i);
    if (m["content"].is_null() && role != "assistant")
      fail_param("messages", "messages[{}] ({}) has no content", i, role);
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array()) fail_param("messages", "messages[{}].tool_calls must be an array", i);
      for (auto& call : m["tool_calls"]) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object())
          fail_param("messages", "messages[{}].tool_calls entries need a 'function' object", i);
        if (call.contains("type") && !call["type"].is_string())
          fail_param("messages", "messages[{}].tool_calls entries' 'type' must be a string", i);
        call["type"] = call.value("type", "function");
        auto& args = call["function"]["arguments"];
        if (!args.is_string()) args = args.dump();  // templates concatenate it as text
      }
    }
    messages.push_back(std::move(m));
  }
  return messages;
}

OrderedJson parse_tools(const OrderedJson& raw) {
  if (raw.is_null()) return raw;
  if (!raw.is_array()) fail_param("tools", "'tools' must be an array, got {}", raw.type_name());
  for (size_t i = 0; i < raw.size(); ++i) {
    const auto& t = raw[i];
    // Each member's type is checked before it is read: nlohmann's value() throws on a mismatch.
    if (!t.is_object() || !t.contains("type") || t["type"] != "function" || !t.contains("function") ||
        !t["function"].is_object() ||
        !t["function"].contains("name") || !t["function"]["name"].is_string())
      fail_param("tools", "tools[{}] must be {{\"type\": \"function\", \"function\": {{\"name\": ..., ...}}}}", i);
  }
  return raw.empty() ? OrderedJson(nullptr) : raw;
}

// tool_choice "required" or a named function: the output must be DeepSeek-V3 tool calls (the
// format tool_call_parser.h reads) whose arguments follow each tool's parameters schema.
std::string tool_call_regex(const OrderedJson& tools, const std::string& only) {
  using grammar::escape_regex;
  std::string alt;
  for (const auto& t : tools) {
    const std::string name = t["function"]["name"].get<std::string>();
    if (!only.empty() && name != only) continue;
    Json params = Json::object({{"type", "object"}});
    if (t["function"].contains("parameters") && t["function"]["parameters"].is_object())
      params = Json::parse(t["function"]["parameters"].dump());
    std::string args;
    try {
      args = grammar::json_schema_regex(params);
    } catch (const std::exception& e) {
      fail_param("tools", "the parameters of tool '{}' cannot be followed: {}", clip_text(name), e.what());
    }
    if (!alt.empty()) alt += '|';
    alt += escape_regex("<｜tool▁call▁begin｜>function<｜tool▁sep｜>" + name + "\n```json\n") + "(?:" + args + ")" +
           escape_regex("\n```<｜tool▁call▁end｜>");
  }
  if (alt.empty()) fail_param("tool_choice", "'tool_choice' names function '{}', which is not in 'tools'", clip_text(only));
  const std::string call = "(?:" + alt + ")";
  // One call, or a few (parallel tool calls), separated by newlines as the template writes them.
  return escape_regex("<｜tool▁calls▁begin｜>") + call + "(?:\n" + call + "){0,3}" + escape_regex("<｜tool▁calls▁end｜>");
}

}  // namespace

Json parse_request_body(std::string_view body) {
  if (body.empty()) fail_param("", "the request body is empty (expected a JSON object)");
  try {
    return parse_json_bounded<Json>(body);  // nesting and numbers bounded: see core/json.h
  } catch (const JsonParseError& e) {
    // nlohmann names the byte offset and, for bad UTF-8, says "ill-formed UTF-8 byte".
    fail_param(e.field(), "malformed JSON in the request body: {}", e.what());
  }
}

CompletionRequest parse_completion_request(const Json& body, const RequestDefaults& defaults) {
  require_object(body);
  CompletionRequest r;
  r.ignored_fields = check_known_fields(body, false);
  r.model = parse_model(body);
  if (auto suffix = get_string(body, "suffix"); suffix && !suffix->empty())
    fail_param("suffix", "'suffix' is not supported");
  r.options = parse_common(body, defaults);
  r.prompts = parse_prompt(body);
  r.echo = get_bool(body, "echo").value_or(false);
  GenerationOptions& o = r.options;
  // Completions' logprobs is the number of alternatives (0: the chosen token's only).
  if (field(body, "logprobs")) {
    o.top_logprobs = get_int_in(body, "logprobs", 0, kMaxTopLogprobs, 0);
    o.logprobs = true;
    o.sampling.logprobs = o.top_logprobs;
  }
  check_logprobs(o, defaults, "logprobs");
  if (r.echo && o.logprobs) fail_param("echo", "'echo' together with 'logprobs' is not supported (no prompt logprobs)");
  // max_completion_tokens (vLLM takes it here too) wins over max_tokens, as in chat.
  if (field(body, "max_completion_tokens")) o.max_tokens = parse_max_tokens(body, "max_completion_tokens");
  else if (field(body, "max_tokens")) o.max_tokens = parse_max_tokens(body, "max_tokens");
  else o.max_tokens = defaults.max_tokens.value_or(16);
  check_min_tokens(o);
  return r;
}

ChatRequest parse_chat_request(const Json& body, std::string_view raw_body, const RequestDefaults& defaults) {
  require_object(body);
  ChatRequest r;
  r.ignored_fields = check_known_fields(body, true);
  r.model = parse_model(body);
  reject_if_present(body, "functions", "use 'tools'");
  reject_if_present(body, "function_call", "use 'tool_choice'");
  reject_if_present(body, "audio", "text only");
  reject_if_present(body, "prediction", "predicted outputs need speculative decoding");
  reject_if_present(body, "web_search_options", "no web search");
  reject_if_present(body, "chat_template", "set the template with `dsinfer serve --chat-template FILE`");
  if (const Json* mod = field(body, "modalities"); mod && *mod != Json::array({"text"}))
    fail_param("modalities", "'modalities' other than [\"text\"] is not supported");
  get_string(body, "reasoning_effort");
  get_string(body, "verbosity");
  get_bool(body, "parallel_tool_calls");
  r.options = parse_common(body, defaults);
  GenerationOptions& o = r.options;

  // Chat's logprobs is a flag; top_logprobs counts alternatives.
  o.logprobs = get_bool(body, "logprobs").value_or(false);
  if (field(body, "top_logprobs")) {
    if (!o.logprobs) fail_param("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
    o.top_logprobs = get_int_in(body, "top_logprobs", 0, kMaxTopLogprobs, 0);
  }
  if (o.logprobs) o.sampling.logprobs = o.top_logprobs;
  check_logprobs(o, defaults, "top_logprobs");
  if (field(body, "max_completion_tokens")) o.max_tokens = parse_max_tokens(body, "max_completion_tokens");
  else if (field(body, "max_tokens")) o.max_tokens = parse_max_tokens(body, "max_tokens");
  o.default_max_tokens = defaults.max_tokens;  // a cap on what the context leaves, not a request
  check_min_tokens(o);

  r.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(true);
  r.continue_final_message = get_bool(body, "continue_final_message").value_or(false);
  if (r.continue_final_message && r.add_generation_prompt && field(body, "add_generation_prompt"))
    fail_param("continue_final_message", "'continue_final_message' and 'add_generation_prompt' exclude each other");
  if (r.continue_final_message) r.add_generation_prompt = false;

  std::string forced_tool;  // tool_choice: "required" (any tool) or {"type": "function", "function": {"name": N}}
  bool tool_required = false;
  if (const Json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      std::string choice = tc->get<std::string>();
      if (choice != "auto" && choice != "none" && choice != "required")
        fail_param("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or a named function, got "
                   "\"{}\"", clip_text(choice));
      r.tool_choice_none = choice == "none";
      tool_required = choice == "required";
    } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object() &&
               (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
      forced_tool = (*tc)["function"]["name"].get<std::string>();
      tool_required = true;
    } else {
      fail_param("tool_choice", "'tool_choice' must be a string or {{\"type\": \"function\", \"function\": "
                 "{{\"name\": ...}}}}");
    }
  }
  if (const Json* kw = field(body, "chat_template_kwargs"); kw && !kw->is_object())
    fail_param("chat_template_kwargs", "'chat_template_kwargs' must be an object, got {}", type_name(*kw));
  if (!field(body, "messages")) fail_param("messages", "'messages' is required");

  // The ordered copy keeps the client's key order for the template's tojson.
  OrderedJson ordered = parse_json_bounded<OrderedJson>(raw_body);
  r.messages = parse_messages(ordered["messages"]);
  r.tools = parse_tools(ordered.contains("tools") ? ordered["tools"] : OrderedJson(nullptr));
  if (ordered.contains("chat_template_kwargs") && ordered["chat_template_kwargs"].is_object())
    r.template_kwargs = ordered["chat_template_kwargs"];
  if (tool_required) {
    if (r.tools.is_null()) fail_param("tool_choice", "'tool_choice' requires tools, but 'tools' is empty");
    if (!o.structured_kind.empty())
      fail_param("tool_choice", "a forced tool call and '{}' both constrain the output: give one", o.structured_param);
    o.structured_kind = "regex";
    o.structured_spec = tool_call_regex(r.tools, forced_tool);
    o.structured_param = "tool_choice";
    r.tool_choice_forced = true;
  }
  if (r.continue_final_message && r.messages.back()["role"] != "assistant")
    fail_param("continue_final_message", "'continue_final_message' needs the last message to be the assistant's");
  return r;
}

}  // namespace dsi::server
