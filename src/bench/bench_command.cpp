// `dsinfer bench`: flags (vLLM's benchmark_serving names where they mean the same), setup
// (model name, prompts, warm-up), the run, and its report.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <thread>

#include "bench/bench_report.h"
#include "bench/commands.h"
#include "bench/load_generator.h"
#include "core/error.h"
#include "core/log.h"

namespace dsi {

namespace {

using namespace dsi::bench;

struct BenchFlags {
  BenchOptions options;
  std::string endpoint = "completions";
  std::string request_rate = "inf";
  std::string token_range;
};

double parse_rate(const std::string& text) {
  if (text == "inf") return std::numeric_limits<double>::infinity();
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  fail("--request-rate '{}' must be a positive number of requests per second, or inf", text);
}

std::string discover_model(const BenchOptions& o, const ServerAddress& address) {
  auto [status, body] = http_get(address, "/v1/models", o.api_key, 30);
  if (status != 200) fail("GET /v1/models answered {}: {}; give --model", status, body.substr(0, 300));
  Json j = parse_json(body, "/v1/models");
  if (!j.contains("data") || !j["data"].is_array() || j["data"].empty() || !j["data"][0].contains("id"))
    fail("GET /v1/models lists no model; give --model");
  return j["data"][0]["id"].get<std::string>();
}

ServerCounters scrape(const BenchOptions& o, const ServerAddress& address) {
  if (!o.server_metrics) return {};
  try {
    auto [status, body] = http_get(address, "/metrics", o.api_key, 10);
    return status == 200 ? parse_server_counters(body) : ServerCounters{};
  } catch (const Error&) {
    return {};
  }
}

// The counters once the engine has published the step that produced the last response: the
// engine hands a step's outputs to the HTTP layer before it counts the step, so a scrape right
// after the last response can miss it. Settled when nothing runs or waits (as this bench's load
// ends; another client's load may never settle, hence the bound of ~2 s).
ServerCounters scrape_settled(const BenchOptions& o, const ServerAddress& address) {
  ServerCounters c = scrape(o, address);
  for (int i = 0; i < 200; ++i) {
    auto running = c.find("dsinfer_num_requests_running"), waiting = c.find("dsinfer_num_requests_waiting");
    if (running == c.end() || waiting == c.end() || (running->second == 0 && waiting->second == 0)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    c = scrape(o, address);
  }
  return c;
}

void run_bench(BenchFlags& f) {
  BenchOptions& o = f.options;
  if (f.endpoint == "chat") o.endpoint = Endpoint::endpoint_chat;
  else if (f.endpoint == "completions") o.endpoint = Endpoint::endpoint_completions;
  else fail("--endpoint {}: expected completions or chat", f.endpoint);
  o.request_rate = parse_rate(f.request_rate);
  if (!f.token_range.empty()) {
    if (std::sscanf(f.token_range.c_str(), "%ld,%ld", &o.vocab_low, &o.vocab_high) != 2)
      fail("--random-token-range '{}': expected LOW,HIGH", f.token_range);
  }
  if (o.api_key.empty())
    if (const char* env = std::getenv("OPENAI_API_KEY")) o.api_key = env;
  if (o.timeout_s <= 0) fail("--timeout must be positive, got {}", o.timeout_s);
  ServerAddress address = parse_base_url(o.base_url);
  std::string model = o.model.empty() ? discover_model(o, address) : o.model;
  std::vector<BenchPrompt> prompts = make_prompts(o);
  spdlog::info("benchmarking {} ({}, model {}): {} requests, concurrency {}, request rate {}", address.describe(),
               f.endpoint, model, prompts.size(), o.concurrency, f.request_rate);
  if (o.num_warmups > 0) {
    BenchOptions warm = o;
    warm.concurrency = 1;
    warm.request_rate = std::numeric_limits<double>::infinity();
    std::vector<BenchPrompt> first(prompts.begin(), prompts.begin() + std::min<size_t>(prompts.size(), size_t(o.num_warmups)));
    run_load(warm, address, model, first);
  }
  ServerCounters before = scrape(o, address);
  LoadRun run = run_load(o, address, model, prompts);
  ServerCounters after = scrape_settled(o, address);
  BenchReport report = make_report(o, model, run, before, after);
  report.base_url = address.describe();
  std::fputs(format_table(report).c_str(), stdout);
  std::fflush(stdout);
  if (!o.result_file.empty()) {
    std::ofstream out(o.result_file);
    if (!out) fail("--result-file {}: cannot write", o.result_file);
    out << report_json(report).dump(2) << "\n";
    spdlog::info("wrote {}", o.result_file);
  }
  if (report.completed == 0) fail("every request failed (first error: {})", report.errors.empty() ? "?" : report.errors[0]);
}

}  // namespace

void register_bench_commands(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Load-test an OpenAI-compatible server (this one, vLLM, SGLang)");
  auto f = std::make_shared<BenchFlags>();
  BenchOptions& o = f->options;
  cmd->add_option("--base-url", o.base_url, "the server's root URL (a trailing /v1 is allowed)")->capture_default_str();
  cmd->add_option("--model", o.model, "model name to request (default: the first of GET /v1/models)");
  cmd->add_option("--api-key", o.api_key, "sent as 'Authorization: Bearer KEY' (default: env OPENAI_API_KEY)");
  cmd->add_option("--endpoint", f->endpoint, "completions (/v1/completions) or chat (/v1/chat/completions)")
      ->capture_default_str();
  cmd->add_option("--num-prompts", o.num_prompts, "requests to send")->capture_default_str();
  cmd->add_option("--input-len", o.input_len, "random prompts: tokens per prompt")->capture_default_str();
  cmd->add_option("--output-len", o.output_len, "max_tokens of each request")->capture_default_str();
  cmd->add_option("--random-range-ratio", o.range_ratio,
                  "random lengths uniform in [len * (1 - r), len * (1 + r)]")
      ->capture_default_str();
  cmd->add_option("--prompt-format", o.prompt_format,
                  "auto (completions: token ids, chat: text), ids, or text (common words, about a token each)")
      ->check(CLI::IsMember({"auto", "ids", "text"}))
      ->capture_default_str();
  cmd->add_option("--random-token-range", f->token_range, "random token ids come from [LOW, HIGH) (default 1000,30000)");
  cmd->add_option("--prompts-file", o.prompts_file,
                  "JSON lines: {\"prompt\": text or ids} or {\"messages\": [...]}, optional \"max_tokens\"");
  cmd->add_flag("!--no-ignore-eos", o.ignore_eos, "let requests stop at EOS (default: ignore_eos is sent)");
  cmd->add_option("--temperature", o.temperature, "sampling temperature")->capture_default_str();
  cmd->add_option("--concurrency,--max-concurrency", o.concurrency, "requests in flight at most")->capture_default_str();
  cmd->add_option("--request-rate", f->request_rate, "Poisson arrivals per second, or inf (all at once)")
      ->capture_default_str();
  cmd->add_option("--num-warmups", o.num_warmups, "requests sent (one at a time) before measuring")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "seed of the random prompts and arrivals")->capture_default_str();
  cmd->add_option("--timeout", o.timeout_s, "seconds a request may take")->capture_default_str();
  cmd->add_option("--result-file", o.result_file, "write the results as JSON here");
  cmd->add_flag("!--no-server-metrics", o.server_metrics,
                "do not read the server's /metrics (dsinfer's engine step times) before and after");
  cmd->callback([f] { run_bench(*f); });
}

}  // namespace dsi
