// Prometheus exposition of the server's metrics.
#include <gtest/gtest.h>

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

TEST(ServerMetrics, RendersEngineAndRequestMetrics) {
  ServerMetrics m;
  m.count_response("/v1/completions", 200);
  m.count_response("/v1/completions", 200);
  m.count_response("/v1/completions", 400);
  m.record_request({0.25, 0.01, 1.5, 10, 20, "length"});
  m.record_request({-1, -1, 0.1, 5, 0, "abort"});
  EngineStats e;
  e.n_running = 3;
  e.kv_blocks_total = 100;
  e.kv_blocks_used = 25;
  e.prefix_queried_tokens = 200;
  e.prefix_hit_tokens = 50;
  e.preemptions_total = 7;
  std::string text = m.render(e);
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("dsinfer_num_requests_running 3"));
  EXPECT_TRUE(has("dsinfer_kv_cache_blocks_used 25"));
  EXPECT_TRUE(has("dsinfer_kv_cache_usage_ratio 0.25"));
  EXPECT_TRUE(has("dsinfer_prefix_cache_hit_rate 0.25"));
  EXPECT_TRUE(has("dsinfer_num_preemptions_total 7"));
  EXPECT_TRUE(has("dsinfer_http_requests_total{route=\"/v1/completions\",status=\"200\"} 2"));
  EXPECT_TRUE(has("dsinfer_http_requests_total{route=\"/v1/completions\",status=\"400\"} 1"));
  EXPECT_TRUE(has("dsinfer_request_success_total{finished_reason=\"length\"} 1"));
  EXPECT_TRUE(has("dsinfer_request_success_total{finished_reason=\"abort\"} 1"));
  EXPECT_TRUE(has("dsinfer_time_to_first_token_seconds_count 1"));  // the aborted one had no token
  EXPECT_TRUE(has("dsinfer_e2e_request_latency_seconds_count 2"));
  EXPECT_TRUE(has("# TYPE dsinfer_time_per_output_token_seconds histogram"));
  // Every sample line is "name[{labels}] value" and every metric has HELP and TYPE.
  size_t n_types = 0, n_helps = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) ++n_types;
    else if (line.rfind("# HELP ", 0) == 0) ++n_helps;
    else EXPECT_NE(line.find(' '), std::string::npos) << line;
  }
  EXPECT_EQ(n_types, n_helps);
  EXPECT_GT(n_types, 20u);
}

}  // namespace
}  // namespace dsi::server
