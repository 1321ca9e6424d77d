// `dsinfer bench`: flags (vLLM's benchmark_serving names where they mean the same), setup
// (model name, prompts, warm-up), the run, and its report.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <thread>

#include "bench/bench_report.h"
#include "bench/commands.h"
#include "bench/expert_scrape.h"
#include "bench/load_generator.h"
#include "bench/plot.h"
#include "bench/progress_bar.h"
#include "core/error.h"
#include "core/log.h"

namespace dsi {

namespace {

using namespace dsi::bench;

struct BenchFlags {
  BenchOptions options;
  std::string endpoint = "completions";
  std::string request_rate = "inf";  // one rate, or a comma-separated sweep
  std::string concurrency = "1";     // one, or a comma-separated sweep
  std::string token_range;
  std::vector<std::string> goodput;
  bool save_result = false;
  std::string result_dir, result_filename;
  CLI::App* plot = nullptr;
  std::vector<std::string> plot_inputs;
  std::string plot_out;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

int parse_concurrency(const std::string& text) {
  try {
    size_t used = 0;
    int v = std::stoi(text, &used);
    if (used == text.size() && v >= 1) return v;
  } catch (const std::exception&) {
  }
  fail("--concurrency '{}' must be a whole number of requests, at least 1", text);
}

std::string rate_name(double rate) { return std::isinf(rate) ? "inf" : fmt::format("{:g}", rate); }

// vLLM's naming: {backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json, the model's last path
// part; a --result-filename gets the point's rate and concurrency inserted when sweeping.
std::string result_path(const BenchFlags& f, const BenchReport& r, bool sweeping) {
  std::string name = f.result_filename;
  if (name.empty()) {
    std::string model = r.model.substr(r.model.find_last_of('/') == std::string::npos ? 0 : r.model.find_last_of('/') + 1);
    name = fmt::format("dsinfer-{}qps-concurrency{}-{}-{}.json", rate_name(r.request_rate), r.concurrency, model, r.date);
  } else if (sweeping) {
    const size_t dot = name.rfind('.');
    const std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
    const std::string ext = dot == std::string::npos ? "" : name.substr(dot);
    name = fmt::format("{}-{}qps-concurrency{}{}", stem, rate_name(r.request_rate), r.concurrency, ext);
  }
  return f.result_dir.empty() ? name : (std::filesystem::path(f.result_dir) / name).string();
}

void write_json(const std::string& path, const Json& j) {
  std::ofstream out(path);
  if (!out) fail("cannot write the result file {}", path);
  out << j.dump(2) << "\n";
  spdlog::info("wrote {}", path);
}

std::string local_date() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

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

// One point: warm-up, the run with its scrapes, the report (printed and saved).
BenchReport run_point(const BenchFlags& f, const BenchOptions& o, const ServerAddress& address, const std::string& model,
                      const std::vector<BenchPrompt>& prompts, bool sweeping) {
  spdlog::info("benchmarking {} ({}, model {}): {} requests, concurrency {}, request rate {}", address.describe(),
               f.endpoint, model, prompts.size(), o.concurrency, rate_name(o.request_rate));
  if (o.num_warmups > 0) {
    BenchOptions warm = o;
    warm.concurrency = 1;
    warm.request_rate = std::numeric_limits<double>::infinity();
    std::vector<BenchPrompt> first(prompts.begin(), prompts.begin() + std::min<size_t>(prompts.size(), size_t(o.num_warmups)));
    run_load(warm, address, model, first);
  }
  const std::string date = local_date();
  ServerCounters before = scrape(o, address);
  ExpertScraper experts(address, o.api_key, o.server_metrics ? o.metrics_interval_s : 0);
  LoadRun run;
  {
    ProgressBar bar(fmt::format("c={} r={}", o.concurrency, rate_name(o.request_rate)), o.progress);
    ProgressCallback progress;
    if (bar.active()) progress = [&bar](size_t done, size_t total) { bar.update(done, total); };
    run = run_load(o, address, model, prompts, progress);
  }
  Json expert_load = experts.finish();
  ServerCounters after = scrape_settled(o, address);
  BenchReport report = make_report(o, model, run, before, after);
  report.base_url = address.describe();
  report.date = date;
  report.expert_load = std::move(expert_load);
  std::fputs(format_table(report).c_str(), stdout);
  std::fflush(stdout);
  if (!o.result_file.empty()) {
    std::string path = o.result_file;
    if (sweeping) {
      BenchFlags named = f;
      named.result_filename = std::filesystem::path(path).filename().string();
      named.result_dir = std::filesystem::path(path).parent_path().string();
      path = result_path(named, report, true);
    }
    write_json(path, report_json(report));
  }
  if (f.save_result) write_json(result_path(f, report, sweeping), report_json(report));
  return report;
}

void run_bench(BenchFlags& f) {
  if (f.plot && f.plot->parsed()) return;  // `bench plot` runs its own callback
  BenchOptions& o = f.options;
  if (f.endpoint == "chat") o.endpoint = Endpoint::endpoint_chat;
  else if (f.endpoint == "completions") o.endpoint = Endpoint::endpoint_completions;
  else fail("--endpoint {}: expected completions or chat", f.endpoint);
  std::vector<double> rates;
  for (const std::string& r : split_list(f.request_rate)) rates.push_back(parse_rate(r));
  std::vector<int> concurrencies;
  for (const std::string& c : split_list(f.concurrency)) concurrencies.push_back(parse_concurrency(c));
  if (!f.token_range.empty()) {
    if (std::sscanf(f.token_range.c_str(), "%ld,%ld", &o.vocab_low, &o.vocab_high) != 2)
      fail("--random-token-range '{}': expected LOW,HIGH", f.token_range);
  }
  o.goodput_ms = parse_goodput(f.goodput);
  if (o.api_key.empty())
    if (const char* env = std::getenv("OPENAI_API_KEY")) o.api_key = env;
  if (o.timeout_s <= 0) fail("--timeout must be positive, got {}", o.timeout_s);
  if (!f.result_dir.empty() && !f.save_result) fail("--result-dir needs --save-result");
  if (!f.result_filename.empty() && !f.save_result) fail("--result-filename needs --save-result");
  if (!f.result_dir.empty()) std::filesystem::create_directories(f.result_dir);
  ServerAddress address = parse_base_url(o.base_url);
  std::string model = o.model.empty() ? discover_model(o, address) : o.model;
  std::vector<BenchPrompt> prompts = make_prompts(o);
  const bool sweeping = rates.size() * concurrencies.size() > 1;
  std::vector<BenchReport> reports;
  for (double rate : rates)
    for (int concurrency : concurrencies) {
      BenchOptions point = o;
      point.request_rate = rate;
      point.concurrency = concurrency;
      reports.push_back(run_point(f, point, address, model, prompts, sweeping));
    }
  if (sweeping) std::fputs(format_sweep(reports).c_str(), stdout);
  for (const BenchReport& r : reports)
    if (r.completed == 0) fail("every request failed (first error: {})", r.errors.empty() ? "?" : r.errors[0]);
}

void run_plot(const BenchFlags& f) {
  if (f.plot_out.empty()) fail("bench plot needs --out FILE.svg");
  std::vector<Json> results;
  for (const std::string& path : f.plot_inputs) {
    std::ifstream in(path);
    if (!in) fail("bench plot: cannot open {}", path);
    std::stringstream text;
    text << in.rdbuf();
    results.push_back(parse_json(text.str(), path));
  }
  std::string svg = plot_results_svg(results, f.plot_inputs);
  std::ofstream out(f.plot_out);
  if (!out) fail("bench plot: cannot write {}", f.plot_out);
  out << svg;
  spdlog::info("wrote {} ({} results)", f.plot_out, results.size());
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
  cmd->add_option("--dataset-name", o.dataset_name,
                  "random (today's), sharegpt (ShareGPT JSON from --dataset-path), or prefix-repetition (shared "
                  "prefixes with random suffixes)")
      ->check(CLI::IsMember({"random", "sharegpt", "prefix-repetition"}))
      ->capture_default_str();
  cmd->add_option("--dataset-path", o.dataset_path, "the dataset file (sharegpt: the JSON array vLLM reads)");
  cmd->add_option("--sharegpt-output-len", o.sharegpt_output_len,
                  "sharegpt: max_tokens of every request (default: the recorded answer's length, ~4 characters a token)");
  cmd->add_option("--prefix-repetition-prefix-len", o.prefix_len, "prefix-repetition: tokens of each shared prefix")
      ->capture_default_str();
  cmd->add_option("--prefix-repetition-suffix-len", o.suffix_len, "prefix-repetition: random tokens after it")
      ->capture_default_str();
  cmd->add_option("--prefix-repetition-num-prefixes", o.num_prefixes, "prefix-repetition: distinct prefixes")
      ->capture_default_str();
  cmd->add_option("--prefix-repetition-output-len", o.prefix_output_len, "prefix-repetition: max_tokens of each request")
      ->capture_default_str();
  cmd->add_option("--prompts-file", o.prompts_file,
                  "JSON lines: {\"prompt\": text or ids} or {\"messages\": [...]}, optional \"max_tokens\"");
  cmd->add_flag("!--no-ignore-eos", o.ignore_eos, "let requests stop at EOS (default: ignore_eos is sent)");
  cmd->add_option("--temperature", o.temperature, "sampling temperature")->capture_default_str();
  cmd->add_option("--concurrency,--max-concurrency", f->concurrency,
                  "requests in flight at most; a comma-separated list sweeps (1,4,16)")
      ->capture_default_str();
  cmd->add_option("--request-rate", f->request_rate,
                  "Poisson arrivals per second, or inf (all at once); a comma-separated list sweeps (1,2,inf)")
      ->capture_default_str();
  cmd->add_option("--goodput", f->goodput,
                  "SLOs in ms, e.g. ttft:500 tpot:50 e2el:10000: request_goodput counts requests meeting all")
      ->expected(1, 3);
  cmd->add_option("--num-warmups", o.num_warmups, "requests sent (one at a time) before measuring")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "seed of the random prompts and arrivals")->capture_default_str();
  cmd->add_option("--timeout", o.timeout_s, "seconds a request may take")->capture_default_str();
  cmd->add_option("--result-file", o.result_file, "write the results as JSON here");
  cmd->add_flag("--save-result", f->save_result,
                "write the results as JSON (vLLM's keys and ours) to --result-dir/--result-filename");
  cmd->add_option("--result-dir", f->result_dir, "--save-result: the folder (default: the current one)");
  cmd->add_option("--result-filename", f->result_filename,
                  "--save-result: the file name (default: dsinfer-{rate}qps-concurrency{N}-{model}-{date}.json)");
  cmd->add_flag("!--no-progress,!--disable-tqdm", o.progress, "no progress bar (it is drawn only on a terminal)");
  cmd->add_option("--metrics-interval", o.metrics_interval_s,
                  "seconds between /metrics scrapes during the run (dsinfer's expert load over time; 0: none)")
      ->capture_default_str();
  cmd->add_flag("!--no-server-metrics", o.server_metrics,
                "do not read the server's /metrics (dsinfer's engine step times) before and after");
  cmd->callback([f] { run_bench(*f); });
  f->plot = cmd->add_subcommand("plot", "Draw bench result files as one SVG: latency against throughput, TTFT and "
                                        "ITL distributions, per-layer expert load");
  f->plot->add_option("results", f->plot_inputs, "result JSON files (--save-result / --result-file)")->required();
  f->plot->add_option("--out", f->plot_out, "the SVG to write")->required();
  f->plot->callback([f] { run_plot(*f); });
}

}  // namespace dsi
