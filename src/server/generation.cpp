#include "server/generation.h"

#include <algorithm>
#include <ctime>

#include "core/log.h"
#include "server/api_error.h"

namespace dsi::server {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

class Generation : public std::enable_shared_from_this<Generation> {
 public:
  Generation(ApiContext& context, std::shared_ptr<HttpConnection> connection, GenerationInput input);
  void submit_all();
  void on_output(size_t k, RequestOutput&& out);
  void abort_all();

 private:
  struct Choice {
    Choice(const Tokenizer& tokenizer, ChoiceConfig config, std::span<const int32_t> prompt, size_t index)
        : state(tokenizer, std::move(config), prompt), prompt_index(index) {}
    ChoiceState state;
    size_t prompt_index;
    RequestId id = 0;
    bool recorded = false;
    // Whole-response accumulation (non-streaming).
    std::string text, reasoning;
    std::vector<ToolCall> calls;
    std::vector<LogprobEntry> logprobs;
    std::vector<int32_t> token_ids;
    int n_calls_sent = 0;
    bool sent_prompt_ids = false;  // streaming with return_token_ids: in the choice's first chunk
    int64_t text_offset = 0;  // completions logprobs: characters before the next token
    std::optional<Clock::time_point> first_token, last_token, first_scheduled;
    std::vector<double> token_gaps;  // seconds between consecutive token events (inter-token latency)
  };

  bool chat() const { return input_.kind == ApiKind::api_chat; }
  const GenerationOptions& options() const { return input_.options; }
  Usage usage() const;
  void record(Choice& c, Clock::time_point now);
  // The choice's timings so far (its token gaps move out).
  RequestTiming timing(Choice& c, Clock::time_point now) const;
  void stream_start();
  void stream_delta(size_t k, const ChoiceDelta& d);
  void accumulate(Choice& c, ChoiceDelta&& d);
  void complete();
  void fail(int status, const std::string& message);
  Json choice_logprobs(Choice& c, const std::vector<LogprobEntry>& entries);
  std::string tool_call_id() const { return random_id("chatcmpl-tool-"); }

  ApiContext& context_;
  std::shared_ptr<HttpConnection> connection_;
  GenerationInput input_;
  ResponseMeta meta_;
  TokenSpeller speller_;
  std::vector<std::unique_ptr<Choice>> choices_;
  size_t n_finished_ = 0;
  bool ended_ = false;  // the response is complete (or the client is gone): events are ignored
};

Generation::Generation(ApiContext& context, std::shared_ptr<HttpConnection> connection, GenerationInput input)
    : context_(context),
      connection_(std::move(connection)),
      input_(std::move(input)),
      speller_{context.tokenizer, input_.options.return_tokens_as_token_ids} {
  meta_.kind = input_.kind;
  // vLLM: a request_id the client gave names the response (its prefix kept).
  const std::string& rid = input_.options.request_id;
  meta_.id = rid.empty() ? random_id(chat() ? "chatcmpl-" : "cmpl-") : (chat() ? "chatcmpl-" : "cmpl-") + rid;
  meta_.created = int64_t(std::time(nullptr));
  meta_.model = context.model_name();
  ChoiceConfig config;
  config.chat = chat();
  config.parse_reasoning = chat() && context.options.reasoning_parser_r1;
  config.parse_tool_calls = input_.parse_tool_calls;
  config.stop = options().stop;
  config.stop_token_ids = options().sampling.stop_token_ids;
  config.include_stop_str_in_output = options().include_stop_str_in_output;
  config.skip_special_tokens = options().skip_special_tokens;
  config.logprobs = options().logprobs;
  for (size_t p = 0; p < input_.prompts.size(); ++p)
    for (int i = 0; i < options().n; ++i)
      choices_.push_back(std::make_unique<Choice>(context.tokenizer, config, input_.prompts[p], p));
}

void Generation::submit_all() {
  std::weak_ptr<Generation> weak = weak_from_this();
  connection_->on_disconnect([weak] {
    if (auto self = weak.lock()) self->abort_all();
  });
  // A server cancel (second signal, --shutdown-timeout) still ends the response properly.
  connection_->on_cancel([weak] {
    if (auto self = weak.lock()) self->fail(503, "the server is shutting down: the request was cancelled");
  });
  auto executor = connection_->executor();
  std::vector<EngineRequest> requests(choices_.size());
  for (size_t k = 0; k < choices_.size(); ++k) {
    EngineRequest& request = requests[k];
    request.prompt = input_.prompts[choices_[k]->prompt_index];
    request.sampling = options().sampling;
    if (request.sampling.seed) *request.sampling.seed += uint64_t(k % size_t(options().n));
    request.arrival = input_.arrival;
    request.priority = options().priority;
    request.cache_salt = options().cache_salt;
    // Runs on the engine's thread: only hand the event over to the connection's strand.
    request.on_output = [self = shared_from_this(), k, executor](RequestOutput&& out) {
      net::post(executor, [self, k, out = std::move(out)]() mutable { self->on_output(k, std::move(out)); });
    };
  }
  // All choices are queued together or none is: a refusal leaves nothing running.
  std::vector<RequestId> ids;
  try {
    ids = context_.engine.submit(std::move(requests));
  } catch (const Error& e) {
    ended_ = true;
    connection_->on_disconnect(nullptr);
    connection_->on_cancel(nullptr);
    const auto* refusal = dynamic_cast<const SubmitError*>(&e);
    const bool retry_later = refusal && refusal->refusal() != SubmitRefusal::submit_too_large;
    throw ApiError(retry_later ? 503 : 400, e.what());
  }
  for (size_t k = 0; k < choices_.size(); ++k) choices_[k]->id = ids[k];
  if (options().stream) stream_start();
}

void Generation::on_output(size_t k, RequestOutput&& out) {
  Choice& c = *choices_[k];
  if (ended_ || c.state.finished()) return;
  const auto now = Clock::now();
  if (out.first_scheduled && !c.first_scheduled) c.first_scheduled = out.first_scheduled;
  if (!out.tokens.empty()) {
    if (!c.first_token) c.first_token = now;
    else c.token_gaps.push_back(seconds_between(*c.last_token, now));
    c.last_token = now;
  }
  ChoiceDelta d = c.state.add(out);
  if (c.state.stopped_by_string()) context_.engine.finish(c.id, FinishReason::finish_stop);  // the rest is not wanted
  if (d.finished) {
    ++n_finished_;
    record(c, now);
    if (c.state.finish_reason() == "error")
      return fail(c.state.server_unavailable() ? 503 : 500,
                  c.state.error().empty() ? "generation failed" : c.state.error());
  }
  if (options().stream) stream_delta(k, d);
  else accumulate(c, std::move(d));
  if (n_finished_ == choices_.size()) complete();
}

void Generation::abort_all() {
  if (ended_) return;
  ended_ = true;
  const auto now = Clock::now();
  for (auto& c : choices_) {
    if (c->state.finished()) continue;
    context_.engine.abort(c->id);
    RequestTiming t = timing(*c, now);
    t.finish_reason = "abort";
    context_.metrics.record_request(t);
  }
}

void Generation::record(Choice& c, Clock::time_point now) {
  if (c.recorded) return;
  c.recorded = true;
  RequestTiming t = timing(c, now);
  t.finish_reason = c.state.finish_reason();
  context_.metrics.record_request(t);
}

RequestTiming Generation::timing(Choice& c, Clock::time_point now) const {
  RequestTiming t;
  t.e2e_latency = seconds_between(input_.arrival, now);
  t.n_prompt_tokens = int(input_.prompts[c.prompt_index].size());
  t.n_generation_tokens = c.state.n_generated();
  if (c.first_token) t.time_to_first_token = seconds_between(input_.arrival, *c.first_token);
  if (c.first_token && t.n_generation_tokens > 1)
    t.time_per_output_token = seconds_between(*c.first_token, *c.last_token) / double(t.n_generation_tokens - 1);
  // vLLM's phases: queued until the first batch, prefill until the first token, decode after.
  if (c.first_scheduled) {
    t.queue_time = std::max(0.0, seconds_between(input_.arrival, *c.first_scheduled));
    if (c.first_token) {
      t.prefill_time = std::max(0.0, seconds_between(*c.first_scheduled, *c.first_token));
      t.inference_time = std::max(0.0, seconds_between(*c.first_scheduled, *c.last_token));
    }
  }
  if (c.first_token) t.decode_time = seconds_between(*c.first_token, *c.last_token);
  t.inter_token_latencies = std::move(c.token_gaps);
  return t;
}

Usage Generation::usage() const {
  Usage u;
  for (const auto& p : input_.prompts) u.prompt_tokens += int64_t(p.size());
  // The prompt is counted once per prompt however many choices share it; its cached part is
  // what every one of them found cached.
  std::vector<int64_t> cached(input_.prompts.size(), INT64_MAX);
  for (const auto& c : choices_) {
    u.completion_tokens += c->state.n_generated();
    cached[c->prompt_index] = std::min<int64_t>(cached[c->prompt_index], c->state.n_cached_prompt_tokens());
  }
  for (int64_t v : cached) u.cached_tokens += v == INT64_MAX ? 0 : v;
  return u;
}

Json Generation::choice_logprobs(Choice& c, const std::vector<LogprobEntry>& entries) {
  if (!options().logprobs) return nullptr;
  if (chat()) return chat_logprobs_json(speller_, entries);
  return completion_logprobs_json(speller_, entries, options().top_logprobs, c.text_offset);
}

// ---- streaming ----

void Generation::stream_start() {
  connection_->begin_event_stream();
  // Chat: each choice opens with the assistant role; completions with echo: the prompt text.
  for (size_t k = 0; k < choices_.size(); ++k) {
    Choice& c = *choices_[k];
    Json choice;
    if (chat()) {
      choice = {{"index", k}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr},
                {"finish_reason", nullptr}};
    } else if (!input_.echo_texts.empty()) {
      const std::string& echo = input_.echo_texts[c.prompt_index];
      c.text_offset = utf8_length(echo);
      choice = {{"index", k}, {"text", echo}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    } else {
      continue;
    }
    if (options().return_token_ids) {
      choice["prompt_token_ids"] = input_.prompts[c.prompt_index];
      c.sent_prompt_ids = true;
    }
    Json chunk = chunk_json(meta_, Json::array({std::move(choice)}));
    if (options().continuous_usage_stats) chunk["usage"] = usage_json(usage());
    connection_->send_event(chunk.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
}

void Generation::stream_delta(size_t k, const ChoiceDelta& d) {
  Choice& c = *choices_[k];
  bool any = !d.text.empty() || !d.reasoning.empty() || !d.tool_calls.empty() || !d.logprobs.empty() || d.finished ||
             (options().return_token_ids && !d.token_ids.empty());
  if (!any) return;
  Json choice = {{"index", k}};
  if (chat()) {
    Json delta = Json::object();
    if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
    if (!d.text.empty()) delta["content"] = d.text;
    if (!d.tool_calls.empty()) {
      Json calls = Json::array();
      for (const ToolCall& call : d.tool_calls) calls.push_back(tool_call_json(call, tool_call_id(), c.n_calls_sent++));
      delta["tool_calls"] = std::move(calls);
    }
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = d.text;
  }
  choice["logprobs"] = d.logprobs.empty() ? Json(nullptr) : choice_logprobs(c, d.logprobs);
  choice["finish_reason"] = d.finished ? Json(c.state.finish_reason()) : Json(nullptr);
  choice["stop_reason"] = d.finished ? stop_reason_json(c.state.stop_reason()) : Json(nullptr);
  if (options().return_token_ids) {
    choice["token_ids"] = d.token_ids;
    if (!c.sent_prompt_ids) choice["prompt_token_ids"] = input_.prompts[c.prompt_index];
    c.sent_prompt_ids = true;
  }
  Json chunk = chunk_json(meta_, Json::array({std::move(choice)}));
  if (options().continuous_usage_stats) chunk["usage"] = usage_json(usage());
  connection_->send_event(chunk.dump(-1, ' ', false, Json::error_handler_t::replace));
}

// ---- whole responses ----

void Generation::accumulate(Choice& c, ChoiceDelta&& d) {
  c.text += d.text;
  c.reasoning += d.reasoning;
  for (auto& call : d.tool_calls) c.calls.push_back(std::move(call));
  for (auto& e : d.logprobs) c.logprobs.push_back(std::move(e));
  c.token_ids.insert(c.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
}

void Generation::complete() {
  if (ended_) return;
  ended_ = true;
  const Usage u = usage();
  if (options().stream) {
    if (options().include_usage) {
      Json chunk = chunk_json(meta_, Json::array());
      chunk["usage"] = usage_json(u);
      connection_->send_event(chunk.dump());
    }
    connection_->send_event("[DONE]");
    connection_->end_event_stream();
    return;
  }
  Json choices = Json::array();
  for (size_t k = 0; k < choices_.size(); ++k) {
    Choice& c = *choices_[k];
    Json choice = {{"index", k}};
    if (chat()) {
      Json message = {{"role", "assistant"}};
      // As vLLM: no content at all (only tool calls or only reasoning) is null, not "".
      message["content"] = c.text.empty() && (!c.calls.empty() || !c.reasoning.empty()) ? Json(nullptr) : Json(c.text);
      if (context_.options.reasoning_parser_r1) message["reasoning_content"] = c.reasoning.empty() ? Json(nullptr) : Json(c.reasoning);
      if (!c.calls.empty()) {
        Json calls = Json::array();
        for (const ToolCall& call : c.calls) calls.push_back(tool_call_json(call, tool_call_id(), std::nullopt));
        message["tool_calls"] = std::move(calls);
      }
      choice["message"] = std::move(message);
    } else {
      std::string text = input_.echo_texts.empty() ? c.text : input_.echo_texts[c.prompt_index] + c.text;
      choice["text"] = std::move(text);
    }
    choice["logprobs"] = choice_logprobs(c, c.logprobs);
    choice["finish_reason"] = c.state.finish_reason();
    choice["stop_reason"] = stop_reason_json(c.state.stop_reason());
    if (options().return_token_ids) {
      choice["token_ids"] = c.token_ids;
      if (!chat()) choice["prompt_token_ids"] = input_.prompts[c.prompt_index];
    }
    choices.push_back(std::move(choice));
  }
  Json body = {{"id", meta_.id},
               {"object", chat() ? "chat.completion" : "text_completion"},
               {"created", meta_.created},
               {"model", meta_.model},
               {"choices", std::move(choices)},
               {"usage", usage_json(u)}};
  if (chat() && options().return_token_ids) body["prompt_token_ids"] = input_.prompts.front();
  connection_->send_json(200, body);
}

void Generation::fail(int status, const std::string& message) {
  if (ended_) return;
  abort_all();  // ends the others; ended_ is now set
  spdlog::warn("request {} failed: {}", meta_.id, message);
  if (options().stream) {
    connection_->send_event(error_json(status, message).dump(-1, ' ', false, Json::error_handler_t::replace));
    connection_->send_event("[DONE]");
    connection_->end_event_stream();
  } else {
    connection_->send_json(status, error_json(status, message));
  }
}

}  // namespace

void start_generation(ApiContext& context, const std::shared_ptr<HttpConnection>& connection, GenerationInput input) {
  auto generation = std::make_shared<Generation>(context, connection, std::move(input));
  generation->submit_all();
}

}  // namespace dsi::server
