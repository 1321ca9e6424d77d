#include "bench/expert_scrape.h"

#include <chrono>
#include <cstdio>

#include "core/error.h"

namespace dsi::bench {

ExpertSnapshot expert_snapshot(const ServerCounters& counters) {
  ExpertSnapshot s;
  std::map<int, std::map<int, double>> tokens;
  std::map<int, double> imbalance;
  for (const auto& [key, value] : counters) {
    int layer = -1, expert = -1;
    if (std::sscanf(key.c_str(), "dsinfer_expert_load_tokens{layer=\"%d\",expert=\"%d\"}", &layer, &expert) == 2)
      tokens[layer][expert] = value;
    else if (std::sscanf(key.c_str(), "dsinfer_expert_load_imbalance{layer=\"%d\"}", &layer) == 1)
      imbalance[layer] = value;
  }
  if (auto it = counters.find("dsinfer_expert_load_imbalance_overall"); it != counters.end()) s.overall = it->second;
  for (const auto& [layer, row] : tokens) {
    s.layers.push_back(layer);
    std::vector<double> r;
    for (const auto& [expert, v] : row) {
      r.resize(size_t(expert) + 1, 0);
      r[size_t(expert)] = v;
    }
    s.tokens.push_back(std::move(r));
    s.imbalance.push_back(imbalance.count(layer) ? imbalance[layer] : 0);
  }
  return s;
}

Json expert_load_json(const std::vector<ExpertSnapshot>& snapshots, double interval_s) {
  const ExpertSnapshot* last = nullptr;
  Json samples = Json::array();
  for (const ExpertSnapshot& s : snapshots) {
    if (s.layers.empty()) continue;
    last = &s;
    samples.push_back(Json{{"t", s.t}, {"overall", s.overall}, {"imbalance", s.imbalance}});
  }
  if (!last) return nullptr;
  size_t n_experts = 0;
  for (const auto& row : last->tokens) n_experts = std::max(n_experts, row.size());
  return Json{{"interval_s", interval_s}, {"layers", last->layers}, {"n_experts", n_experts},
              {"tokens", last->tokens}, {"samples", std::move(samples)}};
}

ExpertScraper::ExpertScraper(const ServerAddress& address, std::string api_key, double interval_s)
    : address_(address), api_key_(std::move(api_key)), interval_s_(interval_s) {
  if (interval_s_ > 0) thread_ = std::thread([this] { loop(); });
}

ExpertScraper::~ExpertScraper() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ExpertScraper::loop() {
  const auto start = Clock::now();
  auto next = start;
  while (!stop_) {
    try {
      auto [status, body] = http_get(address_, "/metrics", api_key_, 10);
      if (status != 200) return;  // not a server with /metrics: nothing to sample
      ExpertSnapshot s = expert_snapshot(parse_server_counters(body));
      if (s.layers.empty()) return;  // no expert series: a dense model, or not dsinfer
      s.t = std::chrono::duration<double>(Clock::now() - start).count();
      std::lock_guard lock(mutex_);
      snapshots_.push_back(std::move(s));
    } catch (const Error&) {
      return;
    }
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s_));
    // Sleep in small steps so finish() does not wait a whole interval.
    while (!stop_ && Clock::now() < next) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Json ExpertScraper::finish() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  return expert_load_json(snapshots_, interval_s_);
}

}  // namespace dsi::bench
