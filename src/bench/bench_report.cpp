#include "bench/bench_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/error.h"

namespace dsi::bench {

Distribution distribution(std::vector<double> v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    double pos = q * double(v.size() - 1);
    size_t lo = size_t(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
  };
  d.count = int64_t(v.size());
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - d.mean) * (x - d.mean);
  d.std = std::sqrt(ss / double(v.size()));
  d.min = v.front();
  d.max = v.back();
  d.p50 = at(0.50);
  d.p90 = at(0.90);
  d.p95 = at(0.95);
  d.p99 = at(0.99);
  return d;
}

ServerCounters parse_server_counters(const std::string& text) {
  ServerCounters c;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("dsinfer_", 0) != 0) continue;  // comments, and vLLM's twins of the same values
    size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    std::string series = line.substr(0, space);
    // The labels every series carries say which server, not which value: left out of the key.
    if (size_t open = series.find('{'); open != std::string::npos && series.back() == '}') {
      std::string kept;
      for (const std::string& label : split_labels(series.substr(open + 1, series.size() - open - 2)))
        if (label.rfind("model_name=", 0) != 0 && label.rfind("engine=", 0) != 0)
          kept += (kept.empty() ? "" : ",") + label;
      series = series.substr(0, open) + (kept.empty() ? "" : "{" + kept + "}");
    }
    try {
      c[series] = std::stod(line.substr(space + 1));
    } catch (const std::exception&) {
    }
  }
  return c;
}

std::vector<std::string> split_labels(const std::string& inside) {
  // name="value" pairs separated by commas; commas and escaped quotes inside values are kept.
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < inside.size(); ++i) {
    char ch = inside[i];
    if (quoted && ch == '\\' && i + 1 < inside.size()) {
      cur += ch;
      cur += inside[++i];
      continue;
    }
    if (ch == '"') quoted = !quoted;
    if (ch == ',' && !quoted) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      continue;
    }
    cur += ch;
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

namespace {

Json server_delta(const ServerCounters& before, const ServerCounters& after) {
  auto delta = [&](const char* name) {
    auto a = after.find(name), b = before.find(name);
    return a == after.end() ? 0.0 : a->second - (b == before.end() ? 0.0 : b->second);
  };
  double steps = delta("dsinfer_engine_steps_total");
  if (after.empty() || steps <= 0) return nullptr;
  return Json{{"steps", steps},
              {"scheduler_ms_per_step", 1e3 * delta("dsinfer_engine_step_seconds_total{phase=\"schedule\"}") / steps},
              {"forward_ms_per_step", 1e3 * delta("dsinfer_engine_step_seconds_total{phase=\"forward\"}") / steps},
              {"communication_ms_per_step",
               1e3 * delta("dsinfer_engine_step_seconds_total{phase=\"communication\"}") / steps},
              {"sampling_ms_per_step", 1e3 * delta("dsinfer_engine_step_seconds_total{phase=\"sampling\"}") / steps},
              {"preemptions", delta("dsinfer_num_preemptions_total")},
              {"prefix_cache_hit_tokens", delta("dsinfer_prefix_cache_hits_total")}};
}

Json distribution_json(const Distribution& d) {
  return Json{{"count", d.count}, {"mean", d.mean}, {"std", d.std}, {"min", d.min}, {"max", d.max},
              {"p50", d.p50},     {"p90", d.p90},   {"p95", d.p95}, {"p99", d.p99}};
}

// vLLM's flat keys of one latency: mean_ttft_ms, median_ttft_ms, std_ttft_ms, p50_ttft_ms, ...
void add_vllm_keys(Json& j, const char* name, const Distribution& d) {
  j[fmt::format("mean_{}_ms", name)] = d.mean;
  j[fmt::format("median_{}_ms", name)] = d.p50;
  j[fmt::format("std_{}_ms", name)] = d.std;
  j[fmt::format("p50_{}_ms", name)] = d.p50;
  j[fmt::format("p90_{}_ms", name)] = d.p90;
  j[fmt::format("p95_{}_ms", name)] = d.p95;
  j[fmt::format("p99_{}_ms", name)] = d.p99;
}

}  // namespace

BenchReport make_report(const BenchOptions& opts, const std::string& model, const LoadRun& run,
                        const ServerCounters& before, const ServerCounters& after) {
  BenchReport r;
  r.endpoint = opts.endpoint == Endpoint::endpoint_chat ? "chat" : "completions";
  r.model = model;
  r.num_prompts = int(run.results.size());
  r.concurrency = opts.concurrency;
  r.request_rate = opts.request_rate;
  r.duration_s = run.duration_s;
  r.goodput_ms = opts.goodput_ms;
  r.dataset_name = opts.prompts_file.empty() ? opts.dataset_name : "file";
  std::vector<double> ttft, tpot, itl, e2e;
  for (const StreamResult& s : run.results) {
    if (!s.ok) {
      ++r.failed;
      if (std::find(r.errors.begin(), r.errors.end(), s.error) == r.errors.end() && r.errors.size() < 10)
        r.errors.push_back(s.error);
      continue;
    }
    ++r.completed;
    r.total_input_tokens += std::max<int64_t>(s.prompt_tokens, 0);
    r.total_output_tokens += s.output_tokens;
    ttft.push_back(1e3 * s.ttft);
    e2e.push_back(1e3 * s.e2e);
    const double request_tpot = s.output_tokens > 1 ? 1e3 * (s.e2e - s.ttft) / double(s.output_tokens - 1) : 0.0;
    if (s.output_tokens > 1) tpot.push_back(request_tpot);
    for (double gap : s.itl) itl.push_back(1e3 * gap);
    r.input_lens.push_back(std::max<int64_t>(s.prompt_tokens, 0));
    r.output_lens.push_back(s.output_tokens);
    r.ttfts.push_back(s.ttft);
    r.itls.push_back(s.itl);
    // Good: every SLO asked for is met (vLLM's goodput; tpot of a one-token answer is 0).
    bool good = true;
    for (const auto& [key, limit] : opts.goodput_ms) {
      const double v = key == "ttft" ? 1e3 * s.ttft : key == "tpot" ? request_tpot : 1e3 * s.e2e;
      good = good && v <= limit;
    }
    r.n_good += good ? 1 : 0;
  }
  r.ttft_ms = distribution(std::move(ttft));
  r.tpot_ms = distribution(std::move(tpot));
  r.itl_ms = distribution(std::move(itl));
  r.e2e_ms = distribution(std::move(e2e));
  if (r.duration_s > 0) {
    r.request_throughput = double(r.completed) / r.duration_s;
    r.output_throughput = double(r.total_output_tokens) / r.duration_s;
    r.total_token_throughput = double(r.total_input_tokens + r.total_output_tokens) / r.duration_s;
    r.request_goodput = double(r.n_good) / r.duration_s;
  }
  r.server = server_delta(before, after);
  return r;
}

std::string format_table(const BenchReport& r) {
  std::string out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, "================ dsinfer bench ================\n");
  fmt::format_to(it, "{:<28}{}\n", "Server:", r.base_url);
  fmt::format_to(it, "{:<28}{} ({})\n", "Model:", r.model, r.endpoint);
  fmt::format_to(it, "{:<28}{}\n", "Concurrency:", r.concurrency);
  fmt::format_to(it, "{:<28}{}\n", "Request rate (req/s):",
                 std::isinf(r.request_rate) ? std::string("inf") : fmt::format("{:g}", r.request_rate));
  fmt::format_to(it, "{:<28}{}\n", "Successful requests:", r.completed);
  fmt::format_to(it, "{:<28}{}\n", "Failed requests:", r.failed);
  fmt::format_to(it, "{:<28}{:.2f}\n", "Duration (s):", r.duration_s);
  fmt::format_to(it, "{:<28}{}\n", "Total input tokens:", r.total_input_tokens);
  fmt::format_to(it, "{:<28}{}\n", "Total output tokens:", r.total_output_tokens);
  fmt::format_to(it, "{:<28}{:.2f}\n", "Request throughput (req/s):", r.request_throughput);
  fmt::format_to(it, "{:<28}{:.2f}\n", "Output throughput (tok/s):", r.output_throughput);
  fmt::format_to(it, "{:<28}{:.2f}\n", "Total throughput (tok/s):", r.total_token_throughput);
  if (!r.goodput_ms.empty())
    fmt::format_to(it, "{:<28}{:.2f} ({} of {} requests good)\n", "Request goodput (req/s):", r.request_goodput,
                   r.n_good, r.completed);
  fmt::format_to(it, "{:-<47}\n{:<16}{:>9}{:>9}{:>9}{:>9}\n", "", "(ms)", "mean", "p50", "p90", "p99");
  auto row = [&](const char* name, const Distribution& d) {
    fmt::format_to(it, "{:<16}{:>9.2f}{:>9.2f}{:>9.2f}{:>9.2f}\n", name, d.mean, d.p50, d.p90, d.p99);
  };
  row("TTFT", r.ttft_ms);
  row("TPOT", r.tpot_ms);
  row("ITL", r.itl_ms);
  row("E2E latency", r.e2e_ms);
  if (!r.server.is_null()) {
    fmt::format_to(it, "{:-<47}\n", "");
    fmt::format_to(it, "{:<28}{}\n", "Engine steps:", r.server["steps"].get<double>());
    fmt::format_to(it, "{:<28}{:.3f}\n", "Scheduler (ms/step):", r.server["scheduler_ms_per_step"].get<double>());
    fmt::format_to(it, "{:<28}{:.3f}\n", "Forward (ms/step):", r.server["forward_ms_per_step"].get<double>());
    fmt::format_to(it, "{:<28}{:.3f}\n", "Sampling (ms/step):", r.server["sampling_ms_per_step"].get<double>());
    fmt::format_to(it, "{:<28}{}\n", "Preemptions:", r.server["preemptions"].get<double>());
  }
  for (const auto& e : r.errors) fmt::format_to(it, "error: {}\n", e);
  fmt::format_to(it, "{:=<47}\n", "");
  return out;
}

std::string format_sweep(const std::vector<BenchReport>& reports) {
  std::string out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, "================================ sweep ================================\n");
  fmt::format_to(it, "{:>6}{:>8}{:>9}{:>10}{:>9}{:>9}{:>9}{:>9}{:>10}\n", "conc", "rate", "req/s", "out tok/s",
                 "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "goodput");
  for (const BenchReport& r : reports)
    fmt::format_to(it, "{:>6}{:>8}{:>9.2f}{:>10.1f}{:>9.1f}{:>9.1f}{:>9.2f}{:>9.2f}{:>10}\n", r.concurrency,
                   std::isinf(r.request_rate) ? std::string("inf") : fmt::format("{:g}", r.request_rate),
                   r.request_throughput, r.output_throughput, r.ttft_ms.p50, r.ttft_ms.p99, r.itl_ms.p50, r.itl_ms.p99,
                   r.goodput_ms.empty() ? std::string("-") : fmt::format("{:.2f}", r.request_goodput));
  fmt::format_to(it, "{:=<71}\n", "");
  return out;
}

Json report_json(const BenchReport& r) {
  Json j{{"base_url", r.base_url},
         {"endpoint", r.endpoint},
         {"model", r.model},
         {"num_prompts", r.num_prompts},
         {"concurrency", r.concurrency},
         {"request_rate", std::isinf(r.request_rate) ? Json("inf") : Json(r.request_rate)},
         {"duration_s", r.duration_s},
         {"completed", r.completed},
         {"failed", r.failed},
         {"errors", r.errors},
         {"total_input_tokens", r.total_input_tokens},
         {"total_output_tokens", r.total_output_tokens},
         {"request_throughput", r.request_throughput},
         {"output_throughput", r.output_throughput},
         {"total_token_throughput", r.total_token_throughput},
         {"ttft_ms", distribution_json(r.ttft_ms)},
         {"tpot_ms", distribution_json(r.tpot_ms)},
         {"itl_ms", distribution_json(r.itl_ms)},
         {"e2e_ms", distribution_json(r.e2e_ms)},
         {"server", r.server},
         {"expert_load", r.expert_load}};
  // vLLM's `bench serve --save-result` keys, so its scripts and plots read ours.
  j["date"] = r.date;
  j["backend"] = "openai";
  j["model_id"] = r.model;
  j["dataset_name"] = r.dataset_name;
  j["max_concurrency"] = r.concurrency;
  j["duration"] = r.duration_s;
  j["request_goodput"] = r.goodput_ms.empty() ? Json(nullptr) : Json(r.request_goodput);
  Json slos = Json::object();
  for (const auto& [k, v] : r.goodput_ms) slos[k] = v;
  j["goodput"] = slos;
  add_vllm_keys(j, "ttft", r.ttft_ms);
  add_vllm_keys(j, "tpot", r.tpot_ms);
  add_vllm_keys(j, "itl", r.itl_ms);
  add_vllm_keys(j, "e2el", r.e2e_ms);
  j["input_lens"] = r.input_lens;
  j["output_lens"] = r.output_lens;
  j["ttfts"] = r.ttfts;
  j["itls"] = r.itls;
  return j;
}

std::map<std::string, double> parse_goodput(const std::vector<std::string>& items) {
  std::map<std::string, double> out;
  for (const std::string& item : items) {
    const size_t colon = item.find(':');
    const std::string key = item.substr(0, colon);
    if (colon == std::string::npos || (key != "ttft" && key != "tpot" && key != "e2el"))
      fail("--goodput '{}': expected ttft:MS, tpot:MS or e2el:MS", item);
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(item.substr(colon + 1), &used);
      if (used != item.size() - colon - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail("--goodput '{}': {} is not a number of milliseconds", item, item.substr(colon + 1));
    }
    if (!(v > 0)) fail("--goodput '{}': the limit must be positive", item);
    out[key] = v;
  }
  return out;
}

}  // namespace dsi::bench
