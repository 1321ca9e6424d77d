// The serving engine on a fixture model: continuous batching, chunked prefill, preemption and
// prefix reuse must not change a single greedy token.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <thread>

#include "../common/test_paths.h"
#include "core/error.h"
#include "core/threads.h"
#include "engine/model_loader.h"

namespace dsi {
namespace {

struct Result {
  std::vector<int32_t> tokens;
  std::vector<GeneratedToken> details;
  FinishReason finish = FinishReason::finish_none;
  int n_events = 0;
  int n_cached = 0;
  std::optional<int32_t> stop_token;
};

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_num_threads(0);
    model_ = new LoadedModel(load_model({test::data_path("tiny-v3-fp8"), "auto", 0}));
  }
  static void TearDownTestSuite() { delete model_; }

  // A runner with `n_blocks` blocks of `block_size` tokens.
  static std::unique_ptr<ModelRunner> runner(int64_t n_blocks, int block_size = 16, bool prefix = true) {
    RunnerOptions o;
    o.block_size = block_size;
    o.prefix_caching = prefix;
    o.max_kv_blocks = n_blocks;
    o.kv_cache_bytes = int64_t(1) << 30;
    o.backend.device = DeviceKind::device_cpu;
    return std::make_unique<ModelRunner>(model_->config, model_->weights, o);
  }

  static RequestId submit(Engine& e, std::map<RequestId, Result>& results, std::vector<int32_t> prompt,
                          SamplingParams sp) {
    EngineRequest r;
    r.prompt = std::move(prompt);
    r.sampling = sp;
    r.on_output = [&results](RequestOutput&& out) {
      Result& res = results[out.id];
      for (auto& t : out.tokens) {
        res.tokens.push_back(t.token);
        res.details.push_back(t);
      }
      ++res.n_events;
      res.finish = out.finish;
      res.n_cached = out.n_cached_prompt_tokens;
      res.stop_token = out.stop_token;
    };
    return e.submit(std::move(r));
  }

  static void drain(Engine& e) {
    for (int guard = 0; e.has_work() && guard < 100000; ++guard) e.step();
  }

  static SamplingParams greedy(int max_tokens) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = max_tokens;
    return p;
  }

  static std::vector<int32_t> random_prompt(std::mt19937& rng, int n) {
    std::vector<int32_t> p = {0};
    std::uniform_int_distribution<int32_t> id(2, 1023);
    while (int(p.size()) < n) p.push_back(id(rng));
    return p;
  }

  static LoadedModel* model_;
};
LoadedModel* EngineTest::model_ = nullptr;

TEST_F(EngineTest, BatchedRequestsGetExactlyTheTokensTheyGetAlone) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int> lengths;
  for (int i = 0; i < 12; ++i) {
    prompts.push_back(random_prompt(rng, 1 + int(rng() % 120)));
    lengths.push_back(1 + int(rng() % 24));
  }
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto r = runner(64);
    Engine e(*r, {});
    std::map<RequestId, Result> res;
    auto id = submit(e, res, prompts[i], greedy(lengths[i]));
    drain(e);
    ASSERT_EQ(res[id].finish, FinishReason::finish_length);
    alone.push_back(res[id].tokens);
  }
  // Together, with a step budget small enough to split prompts into chunks.
  auto r = runner(128);
  EngineOptions o;
  o.max_num_batched_tokens = 40;
  Engine e(*r, o);
  std::map<RequestId, Result> res;
  std::vector<RequestId> ids;
  for (size_t i = 0; i < prompts.size(); ++i) ids.push_back(submit(e, res, prompts[i], greedy(lengths[i])));
  drain(e);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(res[ids[i]].tokens, alone[i]) << "request " << i;
    EXPECT_EQ(int(res[ids[i]].tokens.size()), lengths[i]);
  }
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
  EXPECT_EQ(e.stats().n_running, 0);
}

TEST_F(EngineTest, PreemptionUnderATinyCacheKeepsOutputsExact) {
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(random_prompt(rng, 30 + 10 * i));
  std::vector<std::vector<int32_t>> alone;
  for (auto& p : prompts) {
    auto r = runner(16);
    Engine e(*r, {});
    std::map<RequestId, Result> res;
    auto id = submit(e, res, p, greedy(20));
    drain(e);
    alone.push_back(res[id].tokens);
  }
  // 8 blocks of 16 tokens hold about two of these sequences at a time.
  auto r = runner(8);
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  std::vector<RequestId> ids;
  for (auto& p : prompts) ids.push_back(submit(e, res, p, greedy(20)));
  drain(e);
  EXPECT_GT(e.stats().preemptions_total, 0);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(res[ids[i]].tokens, alone[i]) << "request " << i;
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
}

TEST_F(EngineTest, SharedPrefixIsServedFromTheCache) {
  std::mt19937 rng(3);
  auto prompt = random_prompt(rng, 100);
  auto r = runner(64);
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  auto first = submit(e, res, prompt, greedy(8));
  drain(e);
  auto second = submit(e, res, prompt, greedy(8));
  drain(e);
  EXPECT_EQ(res[first].n_cached, 0);
  EXPECT_EQ(res[second].n_cached, 96);  // six full blocks of 16; the rest is computed
  EXPECT_EQ(res[second].tokens, res[first].tokens);
  auto extended = prompt;
  extended.insert(extended.end(), {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17});
  auto third = submit(e, res, extended, greedy(4));
  drain(e);
  EXPECT_EQ(res[third].n_cached, 96);
  EXPECT_GT(e.stats().prefix_hit_tokens, 0);
}

TEST_F(EngineTest, AbortFreesTheBlocksAtOnce) {
  std::mt19937 rng(1);
  auto r = runner(64);
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  auto id = submit(e, res, random_prompt(rng, 60), greedy(200));
  for (int i = 0; i < 5; ++i) e.step();
  EXPECT_GT(e.stats().kv_blocks_used, 0);
  e.abort(id);
  e.step();
  EXPECT_EQ(res[id].finish, FinishReason::finish_abort);
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
  EXPECT_FALSE(e.has_work());
}

TEST_F(EngineTest, StopTokensAndMinTokens) {
  std::mt19937 rng(9);
  auto prompt = random_prompt(rng, 20);
  auto r = runner(64);
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  auto base = submit(e, res, prompt, greedy(12));
  drain(e);
  const auto& t = res[base].tokens;
  auto sp = greedy(12);
  sp.stop_token_ids = {t[2]};
  auto stopped = submit(e, res, prompt, sp);
  drain(e);
  EXPECT_EQ(res[stopped].finish, FinishReason::finish_stop);
  EXPECT_EQ(res[stopped].stop_token, t[2]);
  EXPECT_EQ(res[stopped].tokens, std::vector<int32_t>(t.begin(), t.begin() + 3));
  sp.min_tokens = 5;
  auto later = submit(e, res, prompt, sp);
  drain(e);
  EXPECT_GE(res[later].tokens.size(), 5u);
  for (size_t i = 0; i + 1 < 5 && i < res[later].tokens.size(); ++i) EXPECT_NE(res[later].tokens[i], t[2]);
}

TEST_F(EngineTest, SeededSamplingIsReproducible) {
  std::mt19937 rng(2);
  auto prompt = random_prompt(rng, 10);
  auto r = runner(64);
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  SamplingParams sp;
  sp.temperature = 1.0;
  sp.max_tokens = 16;
  sp.seed = 1234;
  auto a = submit(e, res, prompt, sp);
  auto b = submit(e, res, prompt, sp);
  sp.seed = 99;
  auto c = submit(e, res, prompt, sp);
  drain(e);
  EXPECT_EQ(res[a].tokens, res[b].tokens);
  EXPECT_NE(res[a].tokens, res[c].tokens);
}

TEST_F(EngineTest, LogprobsDescribeTheChoice) {
  auto r = runner(64);
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  auto sp = greedy(6);
  sp.logprobs = 3;
  sp.ignore_eos = true;  // this prompt's greedy continuation reaches EOS early
  auto id = submit(e, res, {0, 5, 9}, sp);
  drain(e);
  ASSERT_EQ(res[id].details.size(), 6u);
  for (const auto& d : res[id].details) {
    ASSERT_EQ(d.top.size(), 3u);
    EXPECT_EQ(d.top[0].token, d.token);  // greedy takes the most likely
    EXPECT_FLOAT_EQ(d.top[0].logprob, d.logprob);
    EXPECT_LE(d.top[0].logprob, 0.0f);
    EXPECT_GE(d.top[0].logprob, d.top[1].logprob);
    EXPECT_GE(d.top[1].logprob, d.top[2].logprob);
  }
}

TEST_F(EngineTest, BadRequestsAreRefusedWithAReason) {
  auto r = runner(8);  // 128 tokens of cache: max_model_len 128
  Engine e(*r, {});
  EXPECT_EQ(e.max_model_len(), 128);
  std::map<RequestId, Result> res;
  auto message = [&](std::vector<int32_t> prompt, SamplingParams sp) {
    try {
      submit(e, res, std::move(prompt), sp);
    } catch (const Error& err) {
      return std::string(err.what());
    }
    return std::string();
  };
  EXPECT_NE(message({}, greedy(4)).find("prompt is empty"), std::string::npos);
  EXPECT_NE(message({0, 5000}, greedy(4)).find("5000 is outside"), std::string::npos);
  EXPECT_NE(message(std::vector<int32_t>(120, 3), greedy(20)).find("maximum context length is 128"),
            std::string::npos);
  auto bad = greedy(4);
  bad.top_p = 2;
  EXPECT_NE(message({1, 2}, bad).find("top_p"), std::string::npos);
  EXPECT_FALSE(e.has_work());
}

TEST_F(EngineTest, RunLoopDrainsOnStop) {
  std::mt19937 rng(4);
  auto r = runner(64);
  Engine e(*r, {});
  std::mutex m;
  std::map<RequestId, Result> res;
  std::vector<RequestId> ids;
  std::thread loop([&] { e.run(); });
  for (int i = 0; i < 4; ++i) {
    EngineRequest req;
    req.prompt = random_prompt(rng, 10 + i);
    req.sampling = greedy(10);
    req.on_output = [&](RequestOutput&& out) {
      std::lock_guard lock(m);
      for (auto& t : out.tokens) res[out.id].tokens.push_back(t.token);
      res[out.id].finish = out.finish;
    };
    ids.push_back(e.submit(std::move(req)));
  }
  e.stop(true);
  loop.join();
  for (auto id : ids) {
    EXPECT_EQ(res[id].finish, FinishReason::finish_length);
    EXPECT_EQ(res[id].tokens.size(), 10u);
  }
  EngineRequest late;
  late.prompt = {0, 1};
  late.on_output = [](RequestOutput&&) {};
  EXPECT_THROW(e.submit(std::move(late)), Error);
}

}  // namespace
}  // namespace dsi
