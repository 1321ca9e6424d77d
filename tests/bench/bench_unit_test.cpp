// The benchmark's pure parts: URL parsing, percentiles, prompt generation, report numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "bench/bench_report.h"
#include "bench/prompts.h"
#include "bench/stream_client.h"
#include "core/error.h"

namespace dsi::bench {
namespace {

TEST(BaseUrl, Forms) {
  ServerAddress a = parse_base_url("http://127.0.0.1:8000/v1");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, "8000");
  EXPECT_EQ(a.base_path, "");
  a = parse_base_url("http://gpu-box/prefix/v1/");
  EXPECT_EQ(a.host, "gpu-box");
  EXPECT_EQ(a.port, "80");
  EXPECT_EQ(a.base_path, "/prefix");
  a = parse_base_url("http://[::1]:9000");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, "9000");
  EXPECT_THROW(parse_base_url("https://x"), Error);
  EXPECT_THROW(parse_base_url("http://:80"), Error);
  EXPECT_THROW(parse_base_url("http://host:port"), Error);
}

TEST(Distribution, PercentilesInterpolate) {
  Distribution d = distribution({5, 1, 4, 2, 3});
  EXPECT_EQ(d.count, 5);
  EXPECT_DOUBLE_EQ(d.mean, 3);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 5);
  EXPECT_DOUBLE_EQ(d.p50, 3);
  EXPECT_DOUBLE_EQ(d.p90, 4.6);   // numpy.percentile([1..5], 90)
  EXPECT_DOUBLE_EQ(d.p99, 4.96);
  EXPECT_EQ(distribution({}).count, 0);
}

TEST(Prompts, RandomLengthsAndRanges) {
  BenchOptions o;
  o.num_prompts = 50;
  o.input_len = 100;
  o.output_len = 20;
  o.range_ratio = 0.5;
  o.vocab_low = 10;
  o.vocab_high = 20;
  auto prompts = make_prompts(o);
  ASSERT_EQ(prompts.size(), 50u);
  bool varied = false;
  for (const auto& p : prompts) {
    ASSERT_TRUE(p.prompt.is_array());  // completions: token ids
    EXPECT_GE(p.prompt.size(), 50u);
    EXPECT_LE(p.prompt.size(), 150u);
    EXPECT_EQ(int64_t(p.prompt.size()), p.expected_input_len);
    EXPECT_GE(p.max_tokens, 10);
    EXPECT_LE(p.max_tokens, 30);
    varied |= p.prompt.size() != prompts[0].prompt.size();
    for (const auto& t : p.prompt) {
      EXPECT_GE(t.get<int64_t>(), 10);
      EXPECT_LT(t.get<int64_t>(), 20);
    }
  }
  EXPECT_TRUE(varied);
  EXPECT_EQ(make_prompts(o)[7].prompt, prompts[7].prompt);  // seeded
  o.endpoint = Endpoint::endpoint_chat;
  o.range_ratio = 0;
  auto chat = make_prompts(o);
  ASSERT_TRUE(chat[0].prompt.is_array());
  EXPECT_EQ(chat[0].prompt[0]["role"], "user");
  std::string text = chat[0].prompt[0]["content"];
  EXPECT_EQ(std::count(text.begin(), text.end(), ' '), 99);  // 100 words
  Json body = Json::parse(request_body(o, "m", chat[0]));
  EXPECT_EQ(body["model"], "m");
  EXPECT_EQ(body["max_tokens"], 20);
  EXPECT_TRUE(body["stream"].get<bool>());
  EXPECT_TRUE(body["stream_options"]["include_usage"].get<bool>());
  EXPECT_TRUE(body["ignore_eos"].get<bool>());
  EXPECT_TRUE(body.contains("messages"));
  o.prompt_format = "ids";
  EXPECT_THROW(make_prompts(o), Error);  // chat cannot take ids
}

TEST(Prompts, FileErrorsNameTheLine) {
  std::string path = ::testing::TempDir() + "/prompts.jsonl";
  {
    std::ofstream f(path);
    f << "{\"prompt\": \"a\"}\n{\"prompt\": 5}\n";
  }
  BenchOptions o;
  o.prompts_file = path;
  try {
    make_prompts(o);
    FAIL() << "accepted a bad line";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(Report, Numbers) {
  BenchOptions o;
  o.concurrency = 2;
  LoadRun run;
  run.duration_s = 2;
  StreamResult ok;
  ok.ok = true;
  ok.ttft = 0.1;
  ok.e2e = 1.1;
  ok.prompt_tokens = 10;
  ok.output_tokens = 11;
  ok.itl = {0.1, 0.1};
  StreamResult bad;
  bad.error = "HTTP 500: x";
  run.results = {ok, ok, bad, bad};
  BenchReport r = make_report(o, "m", run, {}, {});
  EXPECT_EQ(r.completed, 2);
  EXPECT_EQ(r.failed, 2);
  EXPECT_EQ(r.errors, std::vector<std::string>{"HTTP 500: x"});  // distinct messages
  EXPECT_EQ(r.total_input_tokens, 20);
  EXPECT_EQ(r.total_output_tokens, 22);
  EXPECT_DOUBLE_EQ(r.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(r.output_throughput, 11.0);
  EXPECT_NEAR(r.tpot_ms.mean, 100.0, 1e-9);  // (1.1 - 0.1) s over 10 gaps
  EXPECT_NEAR(r.ttft_ms.p50, 100.0, 1e-9);
  EXPECT_EQ(r.itl_ms.count, 4);
  EXPECT_TRUE(r.server.is_null());
  Json j = report_json(r);
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_EQ(j["failed"], 2);
  ServerCounters before = parse_server_counters(
      "dsinfer_engine_steps_total{model_name=\"m\"} 10\n"
      "dsinfer_engine_step_seconds_total{model_name=\"m\",phase=\"schedule\"} 0.5\n");
  ServerCounters after = parse_server_counters(
      "# TYPE x counter\ndsinfer_engine_steps_total{model_name=\"m\"} 110\n"
      "dsinfer_engine_step_seconds_total{model_name=\"m\",phase=\"schedule\"} 0.6\n"
      "dsinfer_http_requests_total{model_name=\"a,\\\"b\",route=\"/x\",status=\"200\"} 3\n"
      "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 7\n"
      "dsinfer_num_requests_running{model_name=\"m\"} 2\ndsinfer_num_requests_waiting{model_name=\"m\"} 0\n");
  EXPECT_EQ(after.at("dsinfer_http_requests_total{route=\"/x\",status=\"200\"}"), 3);
  EXPECT_EQ(after.count("vllm:num_requests_running"), 0u);
  // The gauges the bench waits on before its last scrape (bench_command.cpp, scrape_settled).
  EXPECT_EQ(after.at("dsinfer_num_requests_running"), 2);
  EXPECT_EQ(after.at("dsinfer_num_requests_waiting"), 0);
  r = make_report(o, "m", run, before, after);
  EXPECT_DOUBLE_EQ(r.server["steps"].get<double>(), 100);
  EXPECT_NEAR(r.server["scheduler_ms_per_step"].get<double>(), 1.0, 1e-9);
  EXPECT_FALSE(format_table(r).empty());
}

}  // namespace
}  // namespace dsi::bench
