// Debug dumps of named intermediates: the chosen names and layers of each step land in
// DIR/step<k>.safetensors with their shapes; the dumped logits are the logits the step
// returned; the dumped final norm is RMSNorm of the last layer's output rows, and lm_head of
// it gives the logits; compare_dumps finds a difference and reports none between equal runs.
//
// Tolerances (float32, u = 2^-24): the final norm recomputed in double differs by a few
// roundings of each value (8 u relative); logits recomputed in double from the dumped
// final_norm are within (hidden + 2) u sum |terms| (Higham 3.1).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "../common/test_paths.h"
#include "core/threads.h"
#include "engine/model_loader.h"
#include "engine/model_runner.h"
#include "model/dump_compare.h"
#include "model/safetensors.h"

namespace dsi {
namespace {

std::vector<float> read_f32(const SafetensorsFile& f, const std::string& name) {
  const auto* e = f.find(name);
  if (!e) throw std::runtime_error("missing " + name);
  EXPECT_EQ(e->dtype, DType::f32) << name;
  std::vector<float> v(size_t(e->numel()));
  std::memcpy(v.data(), e->data, v.size() * 4);
  return v;
}

// A runner dumping `tensors` of `layers` into dir, with one 6-token sequence.
struct DumpRun {
  DumpRun(const std::string& dir, const std::string& tensors, const std::string& layers) {
    set_num_threads(0);
    LoadedModel m = load_model({test::data_path("tiny-v3-fp8"), "auto", 0});
    RunnerOptions o;
    o.backend.device = DeviceKind::device_cpu;
    o.block_size = 16;
    o.kv_cache_bytes = int64_t(8) << 20;
    o.max_num_batched_tokens = 8;
    o.max_num_seqs = 1;
    o.max_logit_rows = 8;
    o.prefix_caching = false;
    o.dump = DumpOptions::parse(tensors, layers, dir);
    runner = std::make_unique<ModelRunner>(std::move(m.config), std::move(m.weights), o);
    table = {*runner->blocks().allocate()};
  }
  // Runs tokens at positions [n_cached, ...), every row's logits.
  std::vector<float> step(const std::vector<int32_t>& tokens, int32_t n_cached) {
    ForwardBatch b;
    const int32_t n = int32_t(tokens.size());
    b.token_ids = tokens;
    for (int32_t i = 0; i < n; ++i) {
      b.positions.push_back(n_cached + i);
      b.kv_slots.push_back(int64_t(table[0]) * runner->block_size() + n_cached + i);
      b.logit_rows.push_back(i);
    }
    b.sequences.push_back({0, n, n_cached, table});
    std::vector<float> logits(size_t(n) * size_t(runner->config().vocab_size));
    runner->forward(b, logits);
    return logits;
  }
  std::unique_ptr<ModelRunner> runner;
  std::vector<int32_t> table;
};

TEST(TensorDump, WritesTheChosenTensorsOfEachStep) {
  test::TempDir dir;
  DumpRun run(dir.path().string(), "*", "");
  const std::vector<int32_t> prompt = {3, 14, 15, 92, 65, 35};
  std::vector<float> logits = run.step(prompt, 0);
  run.step({89}, 6);
  ASSERT_TRUE(std::filesystem::exists(dir.path() / "step0.safetensors"));
  ASSERT_TRUE(std::filesystem::exists(dir.path() / "step1.safetensors"));

  const ModelConfig& c = run.runner->config();
  const int64_t n = 6, H = c.hidden_size, last = c.n_layers - 1;
  SafetensorsFile f((dir.path() / "step0.safetensors").string());
  auto shape = [&](const std::string& name) {
    const auto* e = f.find(name);
    return e ? e->shape : std::vector<int64_t>{};
  };
  EXPECT_EQ(shape("embed"), (std::vector<int64_t>{n, H}));
  EXPECT_EQ(shape("layer.0.attn_norm"), (std::vector<int64_t>{n, H}));
  EXPECT_EQ(shape("layer.0.q_rope"), (std::vector<int64_t>{n, c.n_heads * c.qk_head_dim()}));
  EXPECT_EQ(shape("layer.0.kv_rope"), (std::vector<int64_t>{n, c.kv_cache_dim()}));
  EXPECT_EQ(shape("layer.1.x_sorted"), (std::vector<int64_t>{n * c.num_experts_per_tok, H}));
  EXPECT_EQ(shape("layer.1.expert_ids"), (std::vector<int64_t>{n, c.num_experts_per_tok}));
  EXPECT_EQ(f.find("layer.1.expert_ids")->dtype, DType::i32);
  EXPECT_TRUE(shape("layer.0.router_logits").empty()) << "layer 0 is dense";
  EXPECT_EQ(shape("logits"), (std::vector<int64_t>{n, c.vocab_size}));

  // The dumped logits are the returned ones, bit for bit.
  EXPECT_EQ(read_f32(f, "logits"), logits);
  // final_norm = RMSNorm_final(last layer's output), and lm_head(final_norm) = logits.
  const auto out = read_f32(f, "layer." + std::to_string(last) + ".layer_out");
  const auto normed = read_f32(f, "final_norm");
  const ModelWeights& w = run.runner->model().weights();
  const float* norm_w = w.final_norm.row<const float>(0);
  const double unit = std::ldexp(1.0, -24);
  for (int64_t t = 0; t < n; ++t) {
    double ss = 0;
    for (int64_t j = 0; j < H; ++j) ss += double(out[size_t(t * H + j)]) * out[size_t(t * H + j)];
    const double inv = 1 / std::sqrt(ss / double(H) + c.rms_norm_eps);
    for (int64_t j = 0; j < H; ++j) {
      const double want = norm_w[j] * out[size_t(t * H + j)] * inv;
      EXPECT_NEAR(normed[size_t(t * H + j)], want, 8 * unit * std::fabs(want)) << t << " " << j;
    }
    for (int64_t v = 0; v < c.vocab_size; v += 7) {
      double want = 0, mag = 0;
      for (int64_t j = 0; j < H; ++j) {
        const double term = double(normed[size_t(t * H + j)]) * w.lm_head.at(v, j);
        want += term;
        mag += std::fabs(term);
      }
      EXPECT_NEAR(logits[size_t(t * c.vocab_size + v)], want, double(H + 2) * unit * mag) << t << " " << v;
    }
  }
  // The decode step dumped its one row.
  SafetensorsFile f1((dir.path() / "step1.safetensors").string());
  EXPECT_EQ(f1.find("layer.0.q_full")->shape, (std::vector<int64_t>{1, c.n_heads * c.kv_cache_dim()}));
}

TEST(TensorDump, OnlyTheChosenNamesAndLayers) {
  test::TempDir dir;
  DumpRun run(dir.path().string(), "q_rope, attn_*", "1");
  run.step({3, 14, 15}, 0);
  SafetensorsFile f((dir.path() / "step0.safetensors").string());
  std::set<std::string> names;
  for (const auto& [name, e] : f.entries()) names.insert(name);
  EXPECT_EQ(names, (std::set<std::string>{"layer.1.q_rope", "layer.1.attn_norm", "layer.1.attn_out",
                                          "layer.1.attn_residual"}));
}

TEST(TensorDump, CompareFindsDifferencesAndNoneBetweenEqualRuns) {
  test::TempDir a, b, c;
  DumpRun(a.path().string(), "*", "").step({3, 14, 15}, 0);
  DumpRun(b.path().string(), "*", "").step({3, 14, 15}, 0);
  DumpRun(c.path().string(), "*", "").step({3, 14, 16}, 0);  // one token differs
  auto file = [](const test::TempDir& d) { return (d.path() / "step0.safetensors").string(); };
  for (const TensorDiff& d : compare_dumps(file(a), file(b))) {
    EXPECT_TRUE(d.problem.empty()) << d.name;
    EXPECT_EQ(d.max_abs, 0) << d.name;
  }
  double worst = 0;
  for (const TensorDiff& d : compare_dumps(file(a), file(c))) worst = std::max(worst, d.rel_l2);
  EXPECT_GT(worst, 1e-3);
  // A missing tensor is reported by name.
  test::TempDir partial;
  DumpRun(partial.path().string(), "logits", "").step({3, 14, 15}, 0);
  int n_missing = 0;
  for (const TensorDiff& d : compare_dumps(file(partial), file(a))) n_missing += !d.problem.empty();
  EXPECT_GT(n_missing, 10);
}

TEST(TensorDump, FlagErrorsNameTheFlag) {
  EXPECT_THROW(DumpOptions::parse("q", "", ""), Error);
  EXPECT_THROW(DumpOptions::parse("", "1", "/tmp"), Error);
  try {
    DumpOptions::parse("q", "1,x", "/tmp");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--dump-layers: 'x'"), std::string::npos);
  }
}

}  // namespace
}  // namespace dsi
