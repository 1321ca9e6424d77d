// Prometheus exposition of the server's metrics.
#include <gtest/gtest.h>

#include "core/error.h"
#include "server/metrics.h"

namespace dsi::server {
namespace {

TEST(Histogram, CumulativeInclusiveBuckets) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 20.0}) h.observe(v);
  std::string out;
  h.render(out, "x");
  EXPECT_EQ(out,
            "x_bucket{le=\"0.1\"} 2\n"
            "x_bucket{le=\"1\"} 4\n"
            "x_bucket{le=\"10\"} 4\n"
            "x_bucket{le=\"+Inf\"} 5\n"
            "x_sum 21.65\n"
            "x_count 5\n");
}

TEST(Histogram, LabelsGoBeforeLe) {
  Histogram h({1});
  h.observe(0.5);
  std::string out;
  h.render(out, "x", "model_name=\"m\"");
  EXPECT_EQ(out,
            "x_bucket{model_name=\"m\",le=\"1\"} 1\n"
            "x_bucket{model_name=\"m\",le=\"+Inf\"} 1\n"
            "x_sum{model_name=\"m\"} 0.5\n"
            "x_count{model_name=\"m\"} 1\n");
}

TEST(PrometheusText, LabelValuesAreEscaped) {
  EXPECT_EQ(prometheus_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

RequestTiming timing(double ttft, double tpot, double e2e, int n_prompt, int n_gen, const char* reason) {
  RequestTiming t;
  t.time_to_first_token = ttft;
  t.time_per_output_token = tpot;
  t.e2e_latency = e2e;
  t.n_prompt_tokens = n_prompt;
  t.n_generation_tokens = n_gen;
  t.finish_reason = reason;
  return t;
}

TEST(ServerMetrics, RendersEngineAndRequestMetrics) {
  ServerMetrics m("tiny \"model\"");
  m.count_response("/v1/completions", 200);
  m.count_response("/v1/completions", 200);
  m.count_response("/v1/completions", 400);
  RequestTiming t = timing(0.25, 0.01, 1.5, 10, 20, "length");
  t.queue_time = 0.05;
  t.prefill_time = 0.2;
  t.decode_time = 1.25;
  t.inference_time = 1.45;
  t.inter_token_latencies = {0.01, 0.02, 0.03};
  m.record_request(t);
  m.record_request(timing(-1, -1, 0.1, 5, 0, "abort"));
  EngineStats e;
  e.n_running = 3;
  e.kv_blocks_total = 100;
  e.kv_blocks_used = 25;
  e.prefix_queried_tokens = 200;
  e.prefix_hit_tokens = 50;
  e.preemptions_total = 7;
  e.forward_seconds_total = 2.5;
  e.memory = {"cpu", 1000, 2000, 300};
  std::string text = m.render(e);
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  const std::string ml = "model_name=\"tiny \\\"model\\\"\"";
  const std::string vl = "engine=\"0\"," + ml;
  EXPECT_TRUE(has("dsinfer_num_requests_running{" + ml + "} 3"));
  EXPECT_TRUE(has("vllm:num_requests_running{" + vl + "} 3"));
  EXPECT_TRUE(has("dsinfer_kv_cache_blocks_used{" + ml + "} 25"));
  EXPECT_TRUE(has("dsinfer_kv_cache_usage_ratio{" + ml + "} 0.25"));
  EXPECT_TRUE(has("vllm:kv_cache_usage_perc{" + vl + "} 0.25"));
  EXPECT_TRUE(has("dsinfer_prefix_cache_hit_rate{" + ml + "} 0.25"));
  EXPECT_TRUE(has("vllm:prefix_cache_queries_total{" + vl + "} 200"));
  EXPECT_TRUE(has("vllm:prefix_cache_hits_total{" + vl + "} 50"));
  EXPECT_TRUE(has("dsinfer_num_preemptions_total{" + ml + "} 7"));
  EXPECT_TRUE(has("dsinfer_engine_step_seconds_total{" + ml + ",phase=\"forward\"} 2.5"));
  EXPECT_TRUE(has("dsinfer_engine_step_seconds_total{" + ml + ",phase=\"communication\"} 0"));
  EXPECT_TRUE(has("dsinfer_device_memory_bytes{" + ml + ",device=\"cpu\",kind=\"kv_cache\"} 2000"));
  EXPECT_TRUE(has("dsinfer_http_requests_total{" + ml + ",route=\"/v1/completions\",status=\"200\"} 2"));
  EXPECT_TRUE(has("dsinfer_http_requests_total{" + ml + ",route=\"/v1/completions\",status=\"400\"} 1"));
  EXPECT_TRUE(has("dsinfer_request_success_total{" + ml + ",finished_reason=\"length\"} 1"));
  EXPECT_TRUE(has("vllm:request_success_total{" + vl + ",finished_reason=\"abort\"} 1"));
  EXPECT_TRUE(has("dsinfer_time_to_first_token_seconds_count{" + ml + "} 1"));  // the aborted one had no token
  EXPECT_TRUE(has("vllm:time_to_first_token_seconds_count{" + vl + "} 1"));
  EXPECT_TRUE(has("dsinfer_e2e_request_latency_seconds_count{" + ml + "} 2"));
  EXPECT_TRUE(has("vllm:inter_token_latency_seconds_count{" + vl + "} 3"));
  EXPECT_TRUE(has("vllm:inter_token_latency_seconds_sum{" + vl + "} 0.06"));
  EXPECT_TRUE(has("vllm:request_queue_time_seconds_sum{" + vl + "} 0.05"));
  EXPECT_TRUE(has("vllm:request_prefill_time_seconds_sum{" + vl + "} 0.2"));
  EXPECT_TRUE(has("vllm:request_decode_time_seconds_sum{" + vl + "} 1.25"));
  EXPECT_TRUE(has("vllm:request_decode_time_seconds_count{" + vl + "} 1"));
  EXPECT_TRUE(has("# TYPE dsinfer_time_per_output_token_seconds histogram"));
  EXPECT_EQ(text.find("dsinfer_expert_load"), std::string::npos);  // no MoE layers: no series
  // Every sample line is "name{model_name=...,...} value" and every metric has HELP and TYPE.
  size_t n_types = 0, n_helps = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) ++n_types;
    else if (line.rfind("# HELP ", 0) == 0) ++n_helps;
    else EXPECT_NE(line.find(ml), std::string::npos) << line;
  }
  EXPECT_EQ(n_types, n_helps);
  EXPECT_GT(n_types, 40u);
}

TEST(ServerMetrics, RendersExpertLoad) {
  ServerMetrics m("m");
  EngineStats e;
  ExpertLoadWindow w(3, 4, {1, 2}, 2);
  // Layer 0 is dense (ignored); layer 1 gets 6 tokens on expert 0 of 8 (6 / (8/4) = 3);
  // layer 2 is balanced.
  w.add(std::vector<int32_t>{9, 9, 9, 9, 4, 1, 1, 0, 1, 1, 1, 1});
  w.add(std::vector<int32_t>{9, 9, 9, 9, 2, 0, 0, 0, 1, 1, 1, 1});
  e.expert_load = w.load();
  std::string text = m.render(e);
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("dsinfer_expert_load_tokens{model_name=\"m\",layer=\"1\",expert=\"0\"} 6"));
  EXPECT_TRUE(has("dsinfer_expert_load_tokens{model_name=\"m\",layer=\"2\",expert=\"3\"} 2"));
  EXPECT_TRUE(has("dsinfer_expert_load_imbalance{model_name=\"m\",layer=\"1\"} 3"));
  EXPECT_TRUE(has("dsinfer_expert_load_imbalance{model_name=\"m\",layer=\"2\"} 1"));
  // (6 + 2) / (2 + 2)
  EXPECT_TRUE(has("dsinfer_expert_load_imbalance_overall{model_name=\"m\"} 2"));
  EXPECT_TRUE(has("dsinfer_expert_load_window_steps{model_name=\"m\"} 2"));
  EXPECT_EQ(text.find("layer=\"0\""), std::string::npos);
}

TEST(ExpertLoadWindow, SlidesOverTheLastSteps) {
  ExpertLoadWindow w(1, 2, {0}, 2);
  w.add(std::vector<int32_t>{5, 1});
  w.add(std::vector<int32_t>{1, 1});
  EXPECT_EQ(w.load().tokens, (std::vector<int64_t>{6, 2}));
  w.add(std::vector<int32_t>{0, 3});  // the first step leaves
  EXPECT_EQ(w.load().tokens, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(w.load().n_steps, 2);
  EXPECT_DOUBLE_EQ(expert_imbalance(w.load().row(0)), 4.0 / 2.5);
  EXPECT_THROW(w.add(std::vector<int32_t>{1, 2, 3}), Error);
  EXPECT_THROW(ExpertLoadWindow(1, 2, {0}, 0), Error);
  EXPECT_THROW(ExpertLoadWindow(1, 2, {1}, 4), Error);
  EXPECT_EQ(expert_imbalance(std::vector<int64_t>{0, 0}), 0.0);
}

}  // namespace
}  // namespace dsi::server
