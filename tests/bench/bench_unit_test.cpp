// The benchmark's pure parts: URL parsing, percentiles, prompt generation, report numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "bench/bench_report.h"
#include "bench/expert_scrape.h"
#include "bench/plot.h"
#include "bench/progress_bar.h"
#include "bench/svg.h"
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

TEST(Datasets, ShareGptTakesTheFirstTwoTurns) {
  const std::string path = testing::TempDir() + "sharegpt.json";
  {
    std::ofstream f(path);
    f << R"([{"id": "a", "conversations": [{"from": "human", "value": "tell me about the long river"},
                                          {"from": "gpt", "value": "0123456789012345678901234567890123456789"}]},
             {"id": "b", "conversations": [{"from": "human", "value": "one turn only, skipped"}]},
             {"id": "c", "conversations": [{"from": "human", "value": "ok"}, {"from": "gpt", "value": "a long answer here"}]},
             {"id": "d", "conversations": [{"from": "human", "value": "the city and the world"},
                                          {"from": "gpt", "value": "abcdefghijklmnopqrstuvwx"}, {"from": "human", "value": "x"}]}])";
  }
  BenchOptions o;
  o.dataset_name = "sharegpt";
  o.dataset_path = path;
  o.num_prompts = 3;
  std::vector<BenchPrompt> p = make_prompts(o);
  ASSERT_EQ(p.size(), 3u);  // a, d, then a again (cycled); b has one turn, c a prompt under 4 tokens
  EXPECT_EQ(p[0].prompt, "tell me about the long river");
  EXPECT_EQ(p[0].max_tokens, 10);  // 40 characters, ~4 a token
  EXPECT_EQ(p[1].prompt, "the city and the world");
  EXPECT_EQ(p[1].max_tokens, 6);
  EXPECT_EQ(p[2].prompt, p[0].prompt);
  o.sharegpt_output_len = 7;
  o.endpoint = Endpoint::endpoint_chat;
  p = make_prompts(o);
  EXPECT_EQ(p[0].max_tokens, 7);
  EXPECT_EQ(p[0].prompt[0]["content"], "tell me about the long river");
  o.prompt_format = "ids";
  EXPECT_THROW(make_prompts(o), Error);
  o.prompt_format = "auto";
  o.dataset_path = testing::TempDir() + "missing.json";
  EXPECT_THROW(make_prompts(o), Error);
}

TEST(Datasets, PrefixRepetitionSharesPrefixes) {
  BenchOptions o;
  o.dataset_name = "prefix-repetition";
  o.prefix_len = 5;
  o.suffix_len = 3;
  o.num_prefixes = 2;
  o.prefix_output_len = 4;
  o.num_prompts = 6;
  std::vector<BenchPrompt> p = make_prompts(o);
  ASSERT_EQ(p.size(), 6u);
  std::map<std::vector<int64_t>, int> prefixes;
  std::set<std::vector<int64_t>> suffixes;
  for (const BenchPrompt& q : p) {
    std::vector<int64_t> ids = q.prompt.get<std::vector<int64_t>>();
    ASSERT_EQ(ids.size(), 8u);
    EXPECT_EQ(q.max_tokens, 4);
    ++prefixes[std::vector<int64_t>(ids.begin(), ids.begin() + 5)];
    suffixes.insert(std::vector<int64_t>(ids.begin() + 5, ids.end()));
  }
  EXPECT_EQ(prefixes.size(), 2u);
  for (const auto& [prefix, n] : prefixes) EXPECT_EQ(n, 3);
  EXPECT_EQ(suffixes.size(), 6u);
  o.num_prefixes = 0;
  EXPECT_THROW(make_prompts(o), Error);
  o.num_prefixes = 2;
  o.prompts_file = "x.jsonl";
  EXPECT_THROW(make_prompts(o), Error);  // a file and a dataset
}

TEST(Goodput, ParsesSlos) {
  auto g = parse_goodput({"ttft:500", "tpot:50.5", "e2el:10000"});
  EXPECT_EQ(g.at("ttft"), 500);
  EXPECT_EQ(g.at("tpot"), 50.5);
  EXPECT_EQ(g.at("e2el"), 10000);
  EXPECT_THROW(parse_goodput({"ttft"}), Error);
  EXPECT_THROW(parse_goodput({"itl:5"}), Error);
  EXPECT_THROW(parse_goodput({"ttft:-1"}), Error);
  EXPECT_THROW(parse_goodput({"ttft:5ms"}), Error);
}

TEST(Progress, Line) {
  EXPECT_EQ(progress_line("run", 5, 10, 1.5, 10), "run  5/10 [=====>    ]  50%     1.5 s");
  EXPECT_EQ(progress_line("run", 10, 10, 2, 4), "run 10/10 [====] 100%     2.0 s");
}

TEST(Svg, EscapesTextAndAttributes) {
  Svg svg(10, 10);
  svg.text(1, 2, "a<b & \"c\"", {{"data-series", "p99 <x>"}});
  std::string out = svg.finish();
  EXPECT_NE(out.find(">a&lt;b &amp; &quot;c&quot;</text>"), std::string::npos) << out;
  EXPECT_NE(out.find("data-series=\"p99 &lt;x&gt;\""), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 7), "</svg>\n");
}

TEST(ExpertScrape, SnapshotFromMetrics) {
  ServerCounters c = parse_server_counters(
      "dsinfer_expert_load_tokens{model_name=\"m\",layer=\"2\",expert=\"1\"} 5\n"
      "dsinfer_expert_load_tokens{model_name=\"m\",layer=\"2\",expert=\"0\"} 3\n"
      "dsinfer_expert_load_tokens{model_name=\"m\",layer=\"1\",expert=\"0\"} 4\n"
      "dsinfer_expert_load_tokens{model_name=\"m\",layer=\"1\",expert=\"1\"} 4\n"
      "dsinfer_expert_load_imbalance{model_name=\"m\",layer=\"2\"} 1.25\n"
      "dsinfer_expert_load_imbalance_overall{model_name=\"m\"} 1.125\n");
  ExpertSnapshot s = expert_snapshot(c);
  EXPECT_EQ(s.layers, (std::vector<int>{1, 2}));
  EXPECT_EQ(s.tokens[1], (std::vector<double>{3, 5}));
  EXPECT_EQ(s.imbalance, (std::vector<double>{0, 1.25}));
  EXPECT_EQ(s.overall, 1.125);
  Json j = expert_load_json({s}, 0.5);
  EXPECT_EQ(j["n_experts"], 2);
  EXPECT_EQ(j["samples"].size(), 1u);
  EXPECT_TRUE(expert_load_json({expert_snapshot({})}, 1).is_null());
}

TEST(Plot, RejectsWhatIsNotAResult) {
  EXPECT_THROW(plot_results_svg({Json::object()}, {"x.json"}), Error);
  EXPECT_THROW(plot_results_svg({}, {}), Error);
}

}  // namespace
}  // namespace dsi::bench
