// The serving engine on a fixture model: continuous batching, chunked prefill, preemption and
// prefix reuse must not change a single greedy token.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "../common/test_paths.h"
#include "core/dtype.h"
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
  void TearDown() override { runners_.clear(); }

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
    return e.submit(request(results, std::move(prompt), sp));
  }

  static EngineRequest request(std::map<RequestId, Result>& results, std::vector<int32_t> prompt, SamplingParams sp) {
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
    return r;
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
  std::vector<std::unique_ptr<ModelRunner>> runners_;  // runners a test builds itself
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
  // min_tokens masks the stop token while fewer than min_tokens tokens were generated: with
  // min_tokens 2 the stop may come as the 3rd token (as without it), with 3 it may not.
  sp.min_tokens = 2;
  auto allowed = submit(e, res, prompt, sp);
  sp.min_tokens = 3;
  auto masked = submit(e, res, prompt, sp);
  drain(e);
  EXPECT_EQ(res[allowed].tokens, res[stopped].tokens);
  const auto& later = res[masked].tokens;
  ASSERT_GT(later.size(), 3u);
  EXPECT_EQ(std::vector<int32_t>(later.begin(), later.begin() + 2), std::vector<int32_t>(t.begin(), t.begin() + 2));
  EXPECT_NE(later[2], t[2]);
  if (res[masked].finish == FinishReason::finish_stop) {
    EXPECT_EQ(res[masked].stop_token, later.back());
  }
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

// The engine's logprobs are the log-softmax of the logits a plain forward pass over the same
// tokens gives (what `dsinfer logits` writes), computed here in double. Prompt and output fit
// in 8 tokens, so the engine's steps and the single forward pass both take the GEMM's dot path
// and give the same logits bit for bit (docs/design/engine.md, "Exactness across batching").
// What is left is the sampler's float arithmetic: exp within 2 ulp summed in double, and the
// result rounded to float, so |error| <= 4 * FLT_EPSILON * max(1, |logprob|) holds with room.
TEST_F(EngineTest, LogprobsAreTheLogSoftmaxOfTheForwardLogits) {
  auto r = runner(64);
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  auto sp = greedy(6);
  sp.logprobs = 5;
  sp.ignore_eos = true;
  const std::vector<int32_t> prompt = {0, 7};
  const RequestId id = submit(e, res, prompt, sp);
  drain(e);
  const auto& details = res[id].details;
  ASSERT_EQ(details.size(), 6u);

  // One forward pass over the prompt and the output but its last token, every row's logits.
  std::vector<int32_t> tokens = prompt;
  for (size_t i = 0; i + 1 < details.size(); ++i) tokens.push_back(details[i].token);
  auto plain = runner(4);
  const int bs = plain->block_size();
  std::vector<int32_t> table;
  for (size_t i = 0; i < (tokens.size() + size_t(bs) - 1) / size_t(bs); ++i) table.push_back(*plain->blocks().allocate());
  ForwardBatch batch;
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch.token_ids.push_back(tokens[i]);
    batch.positions.push_back(int32_t(i));
    batch.kv_slots.push_back(int64_t(table[i / size_t(bs)]) * bs + int64_t(i % size_t(bs)));
    batch.logit_rows.push_back(int32_t(i));
  }
  batch.sequences.push_back({0, int32_t(tokens.size()), 0, table});
  const size_t vocab = size_t(plain->config().vocab_size);
  std::vector<float> logits(tokens.size() * vocab);
  plain->forward(batch, logits);

  for (size_t k = 0; k < details.size(); ++k) {
    SCOPED_TRACE(fmt::format("output token {}", k));
    const float* row = logits.data() + (prompt.size() - 1 + k) * vocab;
    double m = -INFINITY, sum = 0;
    for (size_t v = 0; v < vocab; ++v) m = std::max(m, double(row[v]));
    for (size_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - m);
    auto log_softmax = [&](int32_t t) { return double(row[size_t(t)]) - m - std::log(sum); };
    auto tolerance = [](double lp) { return 4 * FLT_EPSILON * std::max(1.0, std::abs(lp)); };
    const int32_t best = int32_t(std::max_element(row, row + vocab) - row);
    EXPECT_EQ(details[k].token, best);  // greedy
    EXPECT_NEAR(details[k].logprob, log_softmax(details[k].token), tolerance(log_softmax(details[k].token)));
    ASSERT_EQ(details[k].top.size(), 5u);
    std::vector<int32_t> order(vocab);
    for (size_t v = 0; v < vocab; ++v) order[v] = int32_t(v);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[size_t(a)] > row[size_t(b)]; });
    for (size_t j = 0; j < 5; ++j) {
      EXPECT_EQ(details[k].top[j].token, order[j]) << "rank " << j;
      const double want = log_softmax(order[j]);
      EXPECT_NEAR(details[k].top[j].logprob, want, tolerance(want)) << "rank " << j;
    }
  }
}

// A request whose logits come out NaN fails alone, with the sampler's message, while the
// request it shares every step with completes with exactly the tokens it produces alone.
// The NaN is real: the embedding row of one token is NaN in random weights of the fixture's
// shape, so only a sequence containing that token computes NaN hidden states and logits.
TEST_F(EngineTest, NonFiniteLogitsFailOnlyTheirRequest) {
  const ModelConfig& config = model_->config;
  ASSERT_FALSE(config.tie_word_embeddings);  // the poisoned row must not reach lm_head
  auto make_runner = [&](std::optional<int32_t> nan_token) {
    ModelWeights w = make_dummy_weights(config, 5);
    if (nan_token) {
      Tensor& embed = w.embed.w;
      ASSERT_EQ(embed.dtype, DType::bf16);  // make_dummy_weights' embeddings are never FP8
      uint16_t* row = embed.row<uint16_t>(*nan_token);
      std::fill(row, row + embed.cols, f32_to_bf16(NAN));
    }
    RunnerOptions o;
    o.block_size = 16;
    o.max_kv_blocks = 64;
    o.backend.device = DeviceKind::device_cpu;
    runners_.push_back(std::make_unique<ModelRunner>(config, std::move(w), o));
  };
  const std::vector<int32_t> healthy_prompt = {0, 11, 12, 13, 14};
  std::map<RequestId, Result> res;
  make_runner(std::nullopt);
  Engine alone(*runners_.back(), {});
  const RequestId solo = submit(alone, res, healthy_prompt, greedy(8));
  drain(alone);
  // A token neither in the healthy prompt nor in its output.
  int32_t poison = 2;
  std::set<int32_t> used(healthy_prompt.begin(), healthy_prompt.end());
  used.insert(res[solo].tokens.begin(), res[solo].tokens.end());
  while (used.count(poison)) ++poison;

  make_runner(poison);
  Engine e(*runners_.back(), {});
  std::mutex m;
  std::map<RequestId, RequestOutput> last;
  std::map<RequestId, std::vector<int32_t>> tokens;
  auto request = [&](std::vector<int32_t> prompt) {
    EngineRequest r;
    r.prompt = std::move(prompt);
    r.sampling = greedy(8);
    r.on_output = [&](RequestOutput&& out) {
      std::lock_guard lock(m);
      for (auto& t : out.tokens) tokens[out.id].push_back(t.token);
      last[out.id] = std::move(out);
    };
    return e.submit(std::move(r));
  };
  std::thread loop([&] { e.run(); });  // the real engine loop, as the server runs it
  const RequestId bad = request({0, 11, poison});
  const RequestId good = request(healthy_prompt);
  e.stop(true);  // drain: both finish, then the loop returns
  loop.join();
  EXPECT_EQ(last[bad].finish, FinishReason::finish_error);
  EXPECT_TRUE(tokens[bad].empty());
  EXPECT_NE(last[bad].error.find("the model produced non-finite logits: NaN at token"), std::string::npos)
      << last[bad].error;
  EXPECT_EQ(last[good].finish, FinishReason::finish_length);
  EXPECT_EQ(tokens[good], res[solo].tokens);
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

// A tiny KV cache keeps a request that shares a cached prefix waiting for many steps while
// another runs; the prefix statistics and its cached_tokens count what its one successful
// admission found, not its failed attempts (nor what they found before an eviction).
TEST_F(EngineTest, PrefixStatsAreCountedOnceAtAdmission) {
  std::mt19937 rng(21);
  const auto shared = random_prompt(rng, 40);
  const auto a_prompt = random_prompt(rng, 90);
  auto b_prompt = std::vector<int32_t>(shared.begin(), shared.begin() + 32);
  const auto tail = random_prompt(rng, 41);
  b_prompt.insert(b_prompt.end(), tail.begin() + 1, tail.end());  // 72 tokens, two full shared blocks
  std::vector<int32_t> b_alone;
  {
    auto r = runner(64);
    Engine e(*r, {});
    std::map<RequestId, Result> res;
    auto id = submit(e, res, b_prompt, greedy(2));
    drain(e);
    b_alone = res[id].tokens;
  }
  auto r = runner(8);  // 8 blocks of 16 tokens
  Engine e(*r, {});
  std::map<RequestId, Result> res;
  submit(e, res, shared, greedy(1));  // leaves its two full blocks cached
  drain(e);
  ASSERT_EQ(e.stats().prefix_queried_tokens, 32);
  ASSERT_EQ(e.stats().prefix_hit_tokens, 0);
  // a takes the 6 free blocks, later a 7th (evicting one cached block); b matches the two
  // cached blocks but needs 3 more, so it waits until a ends.
  auto a = submit(e, res, a_prompt, greedy(12));
  auto b = submit(e, res, b_prompt, greedy(2));
  int n_steps_b_waited = 0;
  for (int guard = 0; e.has_work() && guard < 1000; ++guard) {
    e.step();
    if (res[b].n_events == 0 && e.stats().n_waiting == 1) ++n_steps_b_waited;
  }
  EXPECT_GE(n_steps_b_waited, 10);  // b's admission failed every step while a ran
  EXPECT_EQ(res[a].finish, FinishReason::finish_length);
  // The eviction took the tail of the shared prefix (released last block first): b found one block.
  EXPECT_EQ(res[b].n_cached, 16);
  EXPECT_EQ(res[b].tokens, b_alone);
  const EngineStats st = e.stats();
  EXPECT_EQ(st.prefix_queried_tokens, 32 + 80 + 64);  // full blocks short of the last token, per prompt
  EXPECT_EQ(st.prefix_hit_tokens, 16);
  EXPECT_EQ(st.prompt_tokens_total, 40 + 90 + 72 - 16);
}

TEST_F(EngineTest, AGroupIsQueuedWhollyOrNotAtAll) {
  auto r = runner(64);
  EngineOptions o;
  o.max_num_seqs = 2;
  o.max_waiting_requests = 3;  // 5 requests queued or running at most
  Engine e(*r, o);
  std::map<RequestId, Result> res;
  auto sp = greedy(3);
  sp.ignore_eos = true;
  auto group = [&](int n, int empty_at = -1) {
    std::vector<EngineRequest> g;
    for (int i = 0; i < n; ++i)
      g.push_back(request(res, i == empty_at ? std::vector<int32_t>{} : std::vector<int32_t>{0, 5, int32_t(7 + i)},
                          sp));
    return g;
  };
  auto refusal = [&](std::vector<EngineRequest> g) -> std::optional<SubmitRefusal> {
    try {
      e.submit(std::move(g));
    } catch (const SubmitError& err) {
      return err.refusal();
    }
    return std::nullopt;
  };
  // More than the queue ever holds: refused as too large, naming the limits.
  try {
    e.submit(group(6));
    ADD_FAILURE() << "a group of 6 was queued";
  } catch (const SubmitError& err) {
    EXPECT_EQ(err.refusal(), SubmitRefusal::submit_too_large);
    EXPECT_NE(std::string(err.what()).find("--max-waiting-requests 3"), std::string::npos) << err.what();
  }
  // One invalid member refuses the whole group.
  try {
    e.submit(group(3, 1));
    ADD_FAILURE() << "a group with an empty prompt was queued";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("request 2 of 3: the prompt is empty"), std::string::npos) << err.what();
  }
  EXPECT_FALSE(e.has_work());
  auto ids = e.submit(group(4));
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(e.stats().n_waiting, 4);  // visible before the engine's next step
  // 4 + 2 do not fit: nothing of the second group is queued, the first is untouched.
  EXPECT_EQ(refusal(group(2)), SubmitRefusal::submit_overloaded);
  EXPECT_EQ(e.stats().n_waiting, 4);
  ids.push_back(e.submit(request(res, {0, 9}, sp)));  // the fifth still fits
  e.step();
  EXPECT_EQ(e.stats().n_running, 2);
  EXPECT_EQ(e.stats().n_waiting, 3);
  drain(e);
  EXPECT_EQ(res.size(), 5u);  // only the admitted ones ever produced events
  for (auto id : ids) EXPECT_EQ(res[id].finish, FinishReason::finish_length);
  EXPECT_EQ(e.stats().n_waiting, 0);
}

// Requests the engine took from the inbox in a step are waiting (or running) in its
// published stats already while that step runs, e.g. a long prefill: never counted as nothing.
TEST_F(EngineTest, WaitingRequestsAreVisibleDuringTheStepThatTakesThem) {
  auto r = runner(64);
  EngineOptions o;
  o.max_num_seqs = 1;
  Engine e(*r, o);
  std::map<RequestId, Result> res;
  std::optional<EngineStats> seen;
  EngineRequest first = request(res, {0, 3, 4}, greedy(4));
  first.on_output = [&](RequestOutput&& out) {
    if (out.n_generated == 2) seen = e.stats();  // in the step after the others arrived
  };
  e.submit(std::move(first));
  e.step();  // the first is running
  for (int i = 0; i < 3; ++i) submit(e, res, {0, 5, int32_t(6 + i)}, greedy(2));
  EXPECT_EQ(e.stats().n_waiting, 3);
  e.step();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->n_running, 1);
  EXPECT_EQ(seen->n_waiting, 3);
  drain(e);
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
